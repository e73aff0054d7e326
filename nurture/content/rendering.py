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

Subscriber-supplied values never reach a header unchecked: the first name is
cleaned of control characters (CR/LF included) and never goes into the subject;
addresses and URLs with control characters or spaces are refused.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import jinja2
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape
from mjml import mjml2html

from nurture import links
from nurture.content.campaigns import BodyEnvironment, Campaign, EmailSource, Step
from nurture.config import Config
from nurture.errors import ContentError, InputError
from nurture.tokens import CONFIRM_TTL
from nurture.providers.base import Batch, Envelope, Sender

Kind = Literal["marketing", "transactional"]

FIRST_NAME_FALLBACK = "there"  # "Hi there,"
FIRST_NAME_MAX = 60
ONE_CLICK = "List-Unsubscribe=One-Click"
CONFIRMATION_NAME = "confirmation"
CONFIRMATION_SUBJECT = "Please confirm your subscription to {practice}"
CONFIRMATION_PREHEADER = "One click to confirm. If you did not sign up, ignore this email and nothing will be sent."

# Per-recipient placeholders (stage-2 variables) and the substitution tag each becomes
# in a Batch, per part. URLs get an HTML and a text tag too: the HTML value is escaped.
PLACEHOLDERS = ("first_name", "unsubscribe_url", "confirm_url")
HTML_TAGS = {name: f"-{name}_html-" for name in PLACEHOLDERS}
TEXT_TAGS = {name: f"-{name}_text-" for name in PLACEHOLDERS}
SUBSTITUTION_TAGS = tuple(HTML_TAGS.values()) + tuple(TEXT_TAGS.values())

TEMPLATES = {
    "step": ("layout.mjml", "layout.txt"),
    "newsletter": ("newsletter.mjml", "newsletter.txt"),
    "confirmation": ("confirmation.mjml", "confirmation.txt"),
}
DEFAULT_CTA_LABELS = {"article": "Read the full article", "booking": "Book a consultation", "url": "Read more"}

if TYPE_CHECKING:
    from typing import TypedDict

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
_UNSAFE_URL = re.compile(r"[\s<>\"'\\`{}|^\x00-\x1f\x7f]")
_MJ_LEFTOVER = re.compile(r"</?mj-[a-z-]+", re.IGNORECASE)


# -- public data -----------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    email: str
    first_name: str | None
    unsubscribe_url: str | None = None  # marketing emails
    confirm_url: str | None = None  # the confirmation email


@dataclass(frozen=True)
class RenderedEmail:
    """One recipient's finished message."""

    subject: str
    preheader: str
    text: str
    html: str
    headers: dict[str, str]


# -- cleaning subscriber-supplied values --------------------------------------------


def _is_control(ch: str) -> bool:
    # Cc: C0/C1 controls incl. CR, LF, TAB, NEL; Zl/Zp: U+2028/U+2029; Cf: bidi
    # overrides and zero-width characters that could disguise a name.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def header_text(value: str) -> str:
    """A single-line header value: control characters (CR/LF included) become spaces."""
    # A printable string holds no Cc/Cf/Zl/Zp character (str.isprintable() is False for all
    # "Other" and "Separator" characters except the ASCII space): nothing to replace.
    cleaned = value if value.isprintable() else "".join(" " if _is_control(ch) else ch for ch in value)
    return " ".join(cleaned.split())


def clean_first_name(value: str | None) -> str | None:
    """The first name as it may appear in a message or a To: display name, or None."""
    if not value:
        return None
    name = header_text(value)
    # A name can never smuggle in a substitution tag (it would be replaced in turn).
    previous = None
    while previous != name and "-" in name:  # every tag starts with "-"
        previous = name
        for tag in SUBSTITUTION_TAGS:
            name = name.replace(tag, "")
    name = name.strip()[:FIRST_NAME_MAX].strip()
    return name or None


def _checked_email(value: str) -> str:
    # Fast path: a printable string has no control character, and its only possible
    # whitespace is the ASCII space (see header_text).
    if value and value.isprintable() and " " not in value and "@" in value:
        return value
    if not value or any(_is_control(ch) or ch.isspace() for ch in value) or "@" not in value:
        raise InputError(f"recipient address {value!r} is not usable: it is empty, has no @, or holds spaces or line breaks")
    return value


_HTML_SPECIAL = re.compile(r"[&<>'\"]")


def _html_value(value: str) -> str:
    """`str(escape(value))`, without the call when nothing needs escaping."""
    if type(value) is str and not _HTML_SPECIAL.search(value):
        return value
    return str(escape(value))


def _checked_url(what: str, value: str | None) -> str:
    if not value:
        raise InputError(f"{what} is required for this email")
    if not value.startswith(("https://", "http://")) or _UNSAFE_URL.search(value):
        raise InputError(f"{what} {value!r} is not a usable link: it must be http(s) without spaces, quotes or line breaks")
    return value


def _protect(value: str) -> str:
    """Stage-1 text that reaches the stage-2 templates: make `[[`, `[%`, `[#` literal."""
    return _STAGE2_OPENERS.sub(lambda m: "[[ '[" + m.group(1) + "' ]]", value)


# -- Markdown -> HTML and text -----------------------------------------------------


def _markdown() -> MarkdownIt:
    # commonmark with html=False: raw HTML in the Markdown is shown as text, never passed through.
    # markdown-it also refuses javascript:, vbscript:, file: and data: links.
    return MarkdownIt("commonmark", {"html": False, "typographer": False})


def _inline_text(children: Sequence[Token]) -> str:
    out: list[str] = []
    link_stack: list[tuple[str, int]] = []
    for child in children:
        kind = child.type
        if kind == "text" or kind == "code_inline":
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "link_open":
            link_stack.append((str(child.attrGet("href") or ""), len(out)))
        elif kind == "link_close" and link_stack:
            href, start = link_stack.pop()
            label = "".join(out[start:]).strip()
            if href and href not in (label, f"mailto:{label}"):
                out.append(f" ({href})")
        elif kind == "image":
            alt = "".join(c.content for c in child.children or [])
            src = str(child.attrGet("src") or "")
            out.append(f"[{alt}] ({src})" if alt else f"({src})")
    return "".join(out)


def markdown_to_text(tokens: Sequence[Token]) -> str:
    """Plain text from markdown-it tokens: paragraphs, lists, links as 'text (https://url)'."""
    blocks: list[tuple[str, bool]] = []  # (text, inside a list)
    lists: list[list[Any]] = []  # [ordered, counter]
    marker: str | None = None
    quote = 0
    heading = False

    def add(text: str, first: str, rest: str) -> None:
        lines = text.split("\n")
        prefix = "> " * quote
        shaped = [prefix + (first if i == 0 else rest) + line.strip() for i, line in enumerate(lines)]
        blocks.append(("\n".join(shaped), bool(lists)))

    for tok in tokens:
        kind = tok.type
        if kind == "bullet_list_open":
            lists.append([False, 0])
        elif kind == "ordered_list_open":
            lists.append([True, int(tok.attrGet("start") or 1) - 1])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open":
            lists[-1][1] += 1
            marker = f"{lists[-1][1]}. " if lists[-1][0] else "- "
        elif kind == "blockquote_open":
            quote += 1
        elif kind == "blockquote_close":
            quote -= 1
        elif kind == "heading_open":
            heading = True
        elif kind == "heading_close":
            heading = False
        elif kind == "inline":
            text = _inline_text(tok.children or [])
            if heading:
                text = text.upper() if len(text) < 60 else text
            indent = "   " * (len(lists) - 1) if lists else ""
            if marker:
                add(text, indent + marker, indent + " " * len(marker))
                marker = None
            else:
                pad = indent + "   " if lists else ""
                add(text, pad, pad)
        elif kind in ("fence", "code_block"):
            add(tok.content.rstrip("\n"), "    ", "    ")
        elif kind == "hr":
            add("----", "", "")
    parts: list[str] = []
    for index, (text, in_list) in enumerate(blocks):
        if index:
            parts.append("\n" if in_list and blocks[index - 1][1] else "\n\n")
        parts.append(text)
    return "".join(parts)


# -- the prepared email ------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    html: jinja2.Template  # stage 2, autoescape
    text: jinja2.Template  # stage 2, no escaping
    html_tagged: str  # rendered once with substitution tags
    text_tagged: str
    tags_used: frozenset[str]  # placeholders the templates actually use


class PreparedEmail:
    """One email (a step, a newsletter, or the confirmation) with MJML already compiled."""

    kind: Kind
    name: str

    def __init__(
        self,
        *,
        kind: Kind,
        name: str,
        subject: str,
        preheader: str,
        parts: _Parts,
        sender: Sender,
        categories: Sequence[str],
        source: EmailSource | None,
        template: Path,
        cta_url: str | None,
        mjml: str,
        unsubscribe_mailto: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.subject = subject
        self.preheader = preheader
        self.sender = sender
        self.categories = tuple(categories)
        self.source = source  # the Markdown file, or None for the confirmation
        self.template = template  # the MJML layout file used
        self.cta_url = cta_url
        self.mjml = mjml  # stage-1 MJML source, kept for `nurture check` and debugging
        self._mailto = unsubscribe_mailto
        self._parts = parts
        # Per-recipient work (envelope) reads these instead of recomputing them each time.
        used = parts.tags_used
        self._wants_unsubscribe = kind == "marketing" or "unsubscribe_url" in used
        self._wants_confirm = "confirm_url" in used
        self._mailto_target = f", <mailto:{unsubscribe_mailto}?subject=unsubscribe>" if unsubscribe_mailto else ""
        self._tags = tuple((name, HTML_TAGS[name], TEXT_TAGS[name]) for name in PLACEHOLDERS if name in used)

    def __repr__(self) -> str:
        return f"PreparedEmail({self.kind}, {self.name!r})"

    @property
    def transactional(self) -> bool:
        return self.kind == "transactional"

    @property
    def html_template(self) -> str:
        """The compiled HTML with substitution tags (what a Batch carries)."""
        return self._parts.html_tagged

    @property
    def text_template(self) -> str:
        return self._parts.text_tagged

    def _values(self, recipient: Recipient) -> tuple[str | None, dict[str, str]]:
        """The cleaned first name (None if absent) and the raw per-recipient values."""
        first = clean_first_name(recipient.first_name)
        values = {"first_name": first or FIRST_NAME_FALLBACK}
        if self._wants_unsubscribe:
            values["unsubscribe_url"] = _checked_url("unsubscribe_url", recipient.unsubscribe_url)
        if self._wants_confirm:
            values["confirm_url"] = _checked_url("confirm_url", recipient.confirm_url)
        return first, values

    def _headers(self, values: Mapping[str, str]) -> dict[str, str]:
        if self.kind != "marketing":
            return {}
        # "<url>" or "<url>, <mailto:...?subject=unsubscribe>"
        return {"List-Unsubscribe": f"<{values['unsubscribe_url']}>{self._mailto_target}", "List-Unsubscribe-Post": ONE_CLICK}

    def render(self, recipient: Recipient) -> RenderedEmail:
        """This email for one recipient (preview, check, tests)."""
        _checked_email(recipient.email)
        _, values = self._values(recipient)
        context = {name: values.get(name, "") for name in PLACEHOLDERS}
        return RenderedEmail(
            subject=self.subject,
            preheader=self.preheader,
            text=self._parts.text.render(context),
            html=self._parts.html.render(context),
            headers=self._headers(values),
        )

    def envelope(self, delivery_id: str, recipient: Recipient, custom_args: Mapping[str, str]) -> Envelope:
        """One recipient of a batch: per-recipient values as substitutions (HTML ones escaped)."""
        email = _checked_email(recipient.email)
        first, values = self._values(recipient)
        substitutions: dict[str, str] = {}
        for name, html_tag, text_tag in self._tags:  # the used placeholders, in PLACEHOLDERS order
            value = values[name]
            substitutions[html_tag] = _html_value(value)
            substitutions[text_tag] = value
        return Envelope(
            delivery_id=delivery_id,
            to_email=email,
            to_name=first,
            subject=self.subject,
            headers=self._headers(values),
            substitutions=substitutions,
            custom_args=dict(custom_args),
        )

    def batch(self, envelopes: Sequence[Envelope]) -> Batch:
        """The shared, tagged content and sender for envelopes made by `envelope()`."""
        return Batch(
            sender=self.sender,
            text=self._parts.text_tagged,
            html=self._parts.html_tagged,
            envelopes=tuple(envelopes),
            categories=self.categories,
            transactional=self.transactional,
        )


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
        self._md = _markdown()
        self._layout_env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(config.templates_dir)),
            autoescape=jinja2.select_autoescape(enabled_extensions=("mjml", "html"), default_for_string=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._body_env = BodyEnvironment()  # only {{ practice_name }}: no code, loops or includes in the text
        self._stage2_html = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, **_STAGE2_SYNTAX)
        self._stage2_text = jinja2.Environment(autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True, **_STAGE2_SYNTAX)
        practice = config.practice
        self.sender = Sender(config.sender.from_email, config.sender.from_name, reply_to=practice.reply_to)

    # public API

    def prepare_step(self, campaign: Campaign, step: Step) -> PreparedEmail:
        name = f"{campaign.slug}/{step.slug}"
        key = ("step", name, step.email)
        if key not in self._cache:
            self._cache[key] = self._prepare_marketing(step.email, name, "step", [campaign.slug])
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
                raise ContentError(f"{source.path}:{line}: cta_target is 'article' but there is no 'article:' slug in the front matter")
            url = links.article_url(self.config, front.article)
        elif target == "booking":
            url = self.config.practice.booking_url
        else:
            if not front.cta_url:
                line = front_line(source, "cta_target")
                raise ContentError(f"{source.path}:{line}: cta_target is 'url' but cta_url is missing")
            url = front.cta_url.strip()
            if _UNSAFE_URL.search(url):
                raise ContentError(f"{source.path}:{front_line(source, 'cta_url')}: cta_url {url!r} holds spaces or quotes")
        label = (front.cta or DEFAULT_CTA_LABELS[target]).strip()
        return url, label

    def _body(self, source: EmailSource) -> tuple[Markup, str]:
        """Markdown body -> (HTML, text), with `{{ practice_name }}` filled in."""
        try:
            body = self._body_env.from_string(source.body).render(practice_name=self.config.practice.name)
        except jinja2.TemplateSyntaxError as exc:
            line = source.body_line + (exc.lineno or 1) - 1
            raise ContentError(f"{source.path}:{line}: template syntax error in the text: {exc.message}") from None
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

    def _prepare_marketing(self, source: EmailSource, name: str, template: str, categories: list[str]) -> PreparedEmail:
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
        return self._build(kind="marketing", name=name, template=template, values=values, categories=categories, source=source)

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
            raise ContentError(f"{path}: MJML error: <{leftover.group(0).lstrip('<')}> is not a known MJML tag or is misplaced")
        return html

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
        parts = _Parts(html=html_t, text=text_t, html_tagged=html_tagged, text_tagged=text_tagged, tags_used=used)
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
