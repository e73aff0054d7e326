"""Turn a step, a newsletter or the confirmation into finished messages.

Two stages, so that the expensive part happens once per email, not per recipient:

1. `Renderer.prepare_*` (once per step, cached): the Markdown body becomes HTML
   (markdown-it-py, raw HTML in the Markdown is *not* passed through) and plain
   text; Jinja (`{{ }}`) fills the MJML layout in templates/ with step-level
   values; mjml-python compiles the MJML to HTML once. Per-recipient values are
   still placeholders written with other delimiters (`[[ first_name ]]`,
   `[[ unsubscribe_url ]]`, `[[ confirm_url ]]`), compiled into two small Jinja
   templates (HTML with autoescape, text without).
2. Per recipient: `PreparedEmail.render()` is one cheap Jinja render of each
   part; `envelope()` + `batch()` instead render the templates once with
   substitution tags (`-first_name_html-`...) and hand the per-recipient values
   to the transport as `Envelope.substitutions`, already escaped for HTML.
   `apply_substitutions(batch.html, envelope.substitutions)` equals
   `render(recipient).html` exactly.

Stage 2 and the cleaning of subscriber-supplied values live in
nurture.content.prepared; the Markdown helpers in nurture.content.markdown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import jinja2
from markupsafe import Markup, escape
from mjml import mjml2html

from nurture import links
from nurture.config import Config
from nurture.content.campaigns import BodyEnvironment, Campaign, EmailSource, Step
from nurture.content.htmllines import wrap_html_lines
from nurture.content.markdown import markdown_parser, markdown_to_text
from nurture.content.prepared import (
    HTML_TAGS,
    PLACEHOLDERS,
    TEXT_TAGS,
    UNSAFE_URL,
    CompiledParts,
    Kind,
    PreparedEmail,
    header_text,
)
from nurture.errors import ContentError
from nurture.providers.base import Sender
from nurture.tokens import CONFIRM_TTL

CONFIRMATION_NAME = "confirmation"
CONFIRMATION_SUBJECT = "Please confirm your subscription to {practice}"
CONFIRMATION_PREHEADER = (
    "One click to confirm. If you did not sign up, ignore this email and nothing will be sent."
)

REPERMISSION_NAME = "repermission"
REPERMISSION_SUBJECT = "Still want emails from {practice}?"
REPERMISSION_PREHEADER = {
    "pause": "One click keeps you on the list. No answer is fine too: we will simply pause these emails.",
    "unsubscribe": "One click keeps you on the list. No answer is fine too: we will simply stop.",
}

TEMPLATES = {
    "step": ("layout.mjml", "layout.txt"),
    "newsletter": ("newsletter.mjml", "newsletter.txt"),
    "confirmation": ("confirmation.mjml", "confirmation.txt"),
    "notice": ("notice.mjml", "notice.txt"),
    "repermission": ("repermission.mjml", "repermission.txt"),
}
DEFAULT_CTA_LABELS = {
    "article": "Read the full article",
    "booking": "Book a consultation",
    "url": "Read more",
}


class _Stage2Syntax(TypedDict):
    """The jinja2.Environment delimiter options of stage 2, so ** passes them typed."""

    block_start_string: str
    block_end_string: str
    variable_start_string: str
    variable_end_string: str
    comment_start_string: str
    comment_end_string: str


_STAGE2_SYNTAX: _Stage2Syntax = dict(
    block_start_string="[%",
    block_end_string="%]",
    variable_start_string="[[",
    variable_end_string="]]",
    comment_start_string="[#",
    comment_end_string="#]",
)
_STAGE2_OPENERS = re.compile(r"\[([\[%#])")
_MJ_LEFTOVER = re.compile(r"</?mj-[a-z-]+", re.IGNORECASE)


def _protect(value: str) -> str:
    """Stage-1 text that reaches the stage-2 templates: make `[[`, `[%`, `[#` literal."""
    return _STAGE2_OPENERS.sub(lambda m: "[[ '[" + m.group(1) + "' ]]", value)


# -- the renderer -------------------------------------------------------------------


def body_line_of(source: EmailSource, needle: str) -> int:
    """The file line of the first body line holding `needle`, else the first body line."""
    for offset, line in enumerate(source.body.splitlines()):
        if needle and needle in line:
            return source.body_line + offset
    return source.body_line


def front_line(source: EmailSource, key: str) -> int:
    """The file line of `key:` in the front matter, else 1."""
    try:
        lines = source.path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 1
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() == "---":
            break
        if line.startswith(f"{key}:"):
            return number
    return 1


class Renderer:
    """Prepares emails from config + templates/. Cached: MJML compiles once per step."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.mjml_compilations = 0
        self._cache: dict[Any, PreparedEmail] = {}
        self._md = markdown_parser()
        self._layout_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(config.templates_dir)),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("mjml", "html"), default_for_string=False
            ),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._body_env = BodyEnvironment()  # only {{ practice_name }}: no code, loops or includes in the text
        self._stage2_html = jinja2.Environment(
            autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, **_STAGE2_SYNTAX
        )
        self._stage2_text = jinja2.Environment(
            autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, **_STAGE2_SYNTAX
        )
        practice = config.practice
        self.sender = Sender(config.sender.from_email, config.sender.from_name, reply_to=practice.reply_to)

    # public API

    def prepare_step(self, campaign: Campaign, step: Step) -> PreparedEmail:
        name = f"{campaign.slug}/{step.slug}"
        key = ("step", name, step.email)
        if key not in self._cache:
            # The category is the kind of email, never the campaign: SendGrid sees every category.
            self._cache[key] = self._prepare_marketing(step.email, name, "step", ["series"])
        return self._cache[key]

    def prepare_newsletter(self, email: EmailSource, name: str) -> PreparedEmail:
        key = ("newsletter", name, email)
        if key not in self._cache:
            self._cache[key] = self._prepare_marketing(email, name, "newsletter", ["newsletter"])
        return self._cache[key]

    def prepare_confirmation(self) -> PreparedEmail:
        key = ("confirmation",)
        if key not in self._cache:
            subject = header_text(CONFIRMATION_SUBJECT.format(practice=self.config.practice.name))
            values = {
                "subject": subject,
                "preheader": CONFIRMATION_PREHEADER,
                "confirm_days": CONFIRM_TTL.days,
                "body_html": Markup(""),
                "body_text": "",
                "cta_url": None,
                "cta_label": None,
            }
            self._cache[key] = self._build(
                kind="transactional",
                name=CONFIRMATION_NAME,
                template="confirmation",
                values=values,
                categories=["confirmation"],
                source=None,
            )
        return self._cache[key]

    def prepare_repermission(self) -> PreparedEmail:
        """The "still want these?" email to a quiet reader (sunset: settings): marketing, so it
        carries the footer and List-Unsubscribe; its button opens the reader's preference center."""
        sunset = self.config.sunset
        key = ("repermission", sunset.answer_within, sunset.then)
        if key not in self._cache:
            values = {
                "subject": header_text(REPERMISSION_SUBJECT.format(practice=self.config.practice.name)),
                "preheader": REPERMISSION_PREHEADER[sunset.then],
                "answer_days": max(1, round(sunset.answer_within.total_seconds() / 86400)),
                "then": sunset.then,
                "body_html": Markup(""),
                "body_text": "",
                "cta_url": None,
                "cta_label": None,
            }
            self._cache[key] = self._build(
                kind="marketing",
                name=REPERMISSION_NAME,
                template="repermission",
                values=values,
                categories=["repermission"],
                source=None,
            )
        return self._cache[key]

    def prepare_notice(self, name: str, subject: str, preheader: str, body_markdown: str) -> PreparedEmail:
        """A notice to the owner (weekly summary, alert): transactional, written by nurture itself,
        so not cached (each one is sent once)."""
        tokens = self._md.parse(body_markdown)
        values = {
            "subject": header_text(subject),
            "preheader": header_text(preheader),
            "body_html": Markup(self._md.renderer.render(tokens, self._md.options, {})),
            "body_text": markdown_to_text(tokens),
            "cta_url": None,
            "cta_label": None,
        }
        return self._build(
            kind="transactional",
            name=name,
            template="notice",
            values=values,
            categories=["owner-notice"],
            source=None,
        )

    # stage 1

    def _cta(self, source: EmailSource) -> tuple[str | None, str | None]:
        front = source.front
        target = front.cta_target
        if target is None:
            target = "url" if front.cta_url else "article" if front.article else None
        if target is None:
            return None, None
        if target == "article":
            if not front.article:
                line = front_line(source, "cta_target")
                raise ContentError(
                    f"{source.path}:{line}: cta_target is 'article' but "
                    "there is no 'article:' slug in the front matter"
                )
            url = links.article_url(self.config, front.article)
        elif target == "booking":
            url = self.config.practice.booking_url
        else:
            if not front.cta_url:
                line = front_line(source, "cta_target")
                raise ContentError(f"{source.path}:{line}: cta_target is 'url' but cta_url is missing")
            url = front.cta_url.strip()
            if UNSAFE_URL.search(url):
                raise ContentError(
                    f"{source.path}:{front_line(source, 'cta_url')}: cta_url {url!r} holds spaces or quotes"
                )
        label = (front.cta or DEFAULT_CTA_LABELS[target]).strip()
        return url, label

    def _body(self, source: EmailSource) -> tuple[Markup, str]:
        """Markdown body -> (HTML, text), with `{{ practice_name }}` filled in."""
        try:
            body = self._body_env.from_string(source.body).render(practice_name=self.config.practice.name)
        except jinja2.TemplateSyntaxError as exc:
            line = source.body_line + (exc.lineno or 1) - 1
            raise ContentError(
                f"{source.path}:{line}: template syntax error in the text: {exc.message}"
            ) from None
        except jinja2.UndefinedError as exc:
            match = re.search(r"'([^']+)' is undefined", str(exc))
            needle = match.group(1) if match else "{{"
            line = body_line_of(source, needle)
            raise ContentError(
                f"{source.path}:{line}: {exc.message}: the text may only use {{{{ practice_name }}}}; "
                "names and links are filled in by the layout"
            ) from None
        except jinja2.TemplateError as exc:
            raise ContentError(f"{source.path}:{source.body_line}: cannot fill in the text: {exc}") from None
        tokens = self._md.parse(body)
        for token in tokens:
            for child in token.children or []:
                if child.type == "image" and child.attrGet("src"):
                    child.attrSet("style", "max-width:100%;height:auto;")
        html = self._md.renderer.render(tokens, self._md.options, {})
        return Markup(html), markdown_to_text(tokens)

    def _prepare_marketing(
        self, source: EmailSource, name: str, template: str, categories: list[str]
    ) -> PreparedEmail:
        subject = header_text(source.subject)
        preheader = header_text(source.preheader)
        body_html, body_text = self._body(source)
        cta_url, cta_label = self._cta(source)
        values = {
            "subject": subject,
            "preheader": preheader,
            "body_html": body_html,
            "body_text": body_text,
            "cta_url": cta_url,
            "cta_label": cta_label,
        }
        return self._build(
            kind="marketing",
            name=name,
            template=template,
            values=values,
            categories=categories,
            source=source,
        )

    def _stage1_context(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The same values for the HTML (escaped, then protected) and text (protected) layouts."""
        practice = self.config.practice
        common: dict[str, Any] = {
            "practice_name": practice.name,
            "postal_address": practice.postal_address,
            "website": practice.website,
            "booking_url": practice.booking_url,
            "sender_name": self.config.sender.from_name,
            "label": None,
            **values,
        }
        html_ctx: dict[str, Any] = {}
        text_ctx: dict[str, Any] = {}
        for key, value in common.items():
            if isinstance(value, str):
                html_ctx[key] = Markup(_protect(str(escape(value))))
                text_ctx[key] = _protect(str(value))
            else:
                html_ctx[key] = value
                text_ctx[key] = value
        text_ctx["body_html"] = ""
        return html_ctx, text_ctx

    def _stage1(self, filename: str, context: Mapping[str, Any]) -> str:
        path = self.config.templates_dir / filename
        try:
            return self._layout_env.get_template(filename).render(context)
        except jinja2.TemplateNotFound as exc:
            missing = self.config.templates_dir / exc.name if exc.name else path
            raise ContentError(f"{missing}: template not found (needed by {path.name})") from None
        except jinja2.TemplateSyntaxError as exc:
            where = exc.filename or str(path)
            raise ContentError(f"{where}:{exc.lineno}: template syntax error: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise ContentError(f"{path}: cannot render the template: {exc}") from None

    def _compile_mjml(self, path: Path, source: str) -> str:
        self.mjml_compilations += 1
        try:
            html = mjml2html(source, fonts={})
        except Exception as exc:  # mjml-python raises ValueError; be safe with anything from Rust
            raise ContentError(f"{path}: MJML error: {exc}") from None
        leftover = _MJ_LEFTOVER.search(html)
        if leftover:
            raise ContentError(
                f"{path}: MJML error: <{leftover.group(0).lstrip('<')}> "
                "is not a known MJML tag or is misplaced"
            )
        return wrap_html_lines(html)

    def _stage2(self, env: jinja2.Environment, path: Path, source: str) -> jinja2.Template:
        try:
            return env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ContentError(f"{path}: bad [[ ]] placeholder: {exc.message}") from None

    def _build(
        self,
        *,
        kind: Kind,
        name: str,
        template: str,
        values: Mapping[str, Any],
        categories: Sequence[str],
        source: EmailSource | None,
    ) -> PreparedEmail:
        mjml_name, text_name = TEMPLATES[template]
        mjml_path = self.config.templates_dir / mjml_name
        text_path = self.config.templates_dir / text_name
        html_ctx, text_ctx = self._stage1_context(values)
        mjml_source = self._stage1(mjml_name, html_ctx)
        text_source = self._stage1(text_name, text_ctx)
        html_source = self._compile_mjml(mjml_path, mjml_source)
        html_t = self._stage2(self._stage2_html, mjml_path, html_source)
        text_t = self._stage2(self._stage2_text, text_path, text_source)
        used = frozenset(
            placeholder
            for placeholder in PLACEHOLDERS
            if re.search(r"\[\[-?\s*" + placeholder + r"\b", html_source + text_source)
        )
        try:
            html_tagged = html_t.render({n: Markup(HTML_TAGS[n]) for n in PLACEHOLDERS})
            text_tagged = text_t.render({n: TEXT_TAGS[n] for n in PLACEHOLDERS})
        except jinja2.TemplateError as exc:
            raise ContentError(f"{mjml_path}: cannot fill the [[ ]] placeholders: {exc}") from None
        parts = CompiledParts(
            html=html_t, text=text_t, html_tagged=html_tagged, text_tagged=text_tagged, tags_used=used
        )
        prepared = PreparedEmail(
            kind=kind,
            name=name,
            subject=str(values["subject"]),
            preheader=str(values["preheader"]),
            parts=parts,
            sender=self.sender,
            categories=categories,
            source=source,
            template=mjml_path,
            cta_url=values.get("cta_url"),
            mjml=mjml_source,
            unsubscribe_mailto=self.config.practice.unsubscribe_mailto,
        )
        return prepared
