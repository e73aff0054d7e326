"""The content rules of `nurture check`, one small function each.

A rule takes the facts of one email (EmailFacts: the prepared email, its render
for the sample subscriber, the links, images and visible text of its HTML) and
yields a Finding for each problem, located in the file the owner edits. RULES
lists them; nurture.content.checks runs them all. A new rule is one function
added to RULES.
"""

from __future__ import annotations

import contextlib
import html as html_lib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from nurture.config import Config
from nurture.content.campaigns import EmailSource
from nurture.content.markdown import markdown_parser
from nurture.content.prepared import SUBSTITUTION_TAGS, PreparedEmail, Recipient, RenderedEmail
from nurture.content.rendering import CONFIRMATION_NAME, TEMPLATES, front_line

SUBJECT_MAX = 78
DISCLAIMER = "education, not medical advice"
CRISIS = "988"
_UNRENDERED = re.compile(r"(\{\{|\{%|\[\[|\[%)")
_UNRENDERED_SNIPPET = re.compile(r"(\{\{|\{%|\[\[|\[%).{0,40}?(\}\}|%\}|\]\]|%\])")
_HTTP_IN_TEXT = re.compile(r"http://[^\s)>\]\"']+", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class Finding:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        path = self.path
        with contextlib.suppress(ValueError):  # outside the current folder: keep it absolute
            path = path.relative_to(Path.cwd()) if path.is_absolute() else path
        where = f"{path}:{self.line}" if self.line else str(path)
        return f"{where}: {self.message}"


# -- reading rendered HTML -------------------------------------------------------------


class HtmlFacts(HTMLParser):
    """Links, images and visible text of a rendered email."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.srcs: list[str] = []
        self._skip = 0
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("style", "script", "title", "head"):
            self._skip += 1
        if tag == "a" and values.get("href") is not None:
            self.hrefs.append(str(values["href"]).strip())
        if tag == "img":
            self.images.append(values)
        if tag in ("img", "source", "video", "audio", "iframe", "script") and values.get("src"):
            self.srcs.append(str(values["src"]).strip())
        if tag == "br":
            self._text.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag in ("style", "script", "title", "head"):
            self._skip -= 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title", "head") and self._skip:
            self._skip -= 1
        self._text.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._text.append(data)

    @property
    def text(self) -> str:
        return " ".join("".join(self._text).split())


def html_facts(content: str) -> HtmlFacts:
    parser = HtmlFacts()
    parser.feed(content)
    parser.close()
    return parser


def squash(text: str) -> str:
    return " ".join(text.split())


# -- locating a problem in the files the owner edits ------------------------------------


class Locator:
    def __init__(self, config: Config, source: EmailSource | None, prepared: PreparedEmail | None) -> None:
        self.config = config
        self.source = source
        self.template = (
            prepared.template if prepared is not None else config.templates_dir / TEMPLATES["step"][0]
        )

    @property
    def default(self) -> tuple[Path, int]:
        if self.source is not None:
            return self.source.path, self.source.body_line
        return self.template, 1

    def front(self, key: str) -> tuple[Path, int]:
        if self.source is None:
            return self.template, 1
        return self.source.path, front_line(self.source, key)

    def config_key(self, url: str) -> tuple[str, str] | None:
        """(dotted key, value) of the config URL that `url` was built from, if any."""
        for key, value in (
            ("web.public_base_url", self.config.web.public_base_url),
            ("practice.booking_url", self.config.practice.booking_url),
            ("practice.website", self.config.practice.website),
        ):
            if url == value or url.startswith(value.rstrip("/") + "/"):
                return key, value
        return None

    def config_line(self, dotted: str) -> tuple[Path, int | None]:
        last = dotted.rsplit(".", 1)[-1]
        try:
            lines = self.config.path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return self.config.path, None
        for number, line in enumerate(lines, start=1):
            if line.strip().startswith(f"{last}:"):
                return self.config.path, number
        return self.config.path, None

    def find(self, needle: str) -> tuple[Path, int]:
        """The first file line holding `needle`: the Markdown, then config.yaml, then templates/."""
        needle = needle.strip()
        if not needle:
            return self.default
        candidates: list[Path] = []
        if self.source is not None:
            candidates.append(self.source.path)
        candidates.append(self.config.path)
        candidates.append(self.template)
        if self.config.templates_dir.is_dir():
            candidates.extend(
                sorted(p for p in self.config.templates_dir.rglob("*") if p.is_file() and p != self.template)
            )
        needles = [needle]
        origin = re.match(r"[a-z][a-z0-9+.-]*://[^/\s]+", needle, re.IGNORECASE)
        if origin and origin.group(0) != needle:
            needles.append(origin.group(0))  # e.g. the unsubscribe link: web.public_base_url in config.yaml
        texts: list[tuple[Path, list[str]]] = []
        for path in candidates:
            try:
                texts.append((path, path.read_text(encoding="utf-8").splitlines()))
            except (OSError, UnicodeDecodeError):
                continue
        for wanted in needles:
            for path, lines in texts:
                for number, line in enumerate(lines, start=1):
                    if wanted in line:
                        return path, number
        return self.default


# -- the rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailFacts:
    """One prepared email rendered for the sample subscriber: what every rule reads."""

    config: Config
    source: EmailSource | None  # the Markdown file, or None for the confirmation
    prepared: PreparedEmail
    sample: Recipient
    rendered: RenderedEmail
    html: HtmlFacts  # links and images of the HTML part
    visible: str  # the visible text of the HTML part
    text_flat: str  # the plain-text part with its whitespace squashed
    locate: Locator

    @property
    def layout(self) -> str:
        return self.prepared.template.name

    @property
    def parts(self) -> tuple[tuple[str, str], ...]:
        """(name, content) of everything the recipient sees, as the findings name them."""
        rendered = self.rendered
        return (
            ("subject", rendered.subject),
            ("preheader", rendered.preheader),
            ("HTML", rendered.html),
            ("plain-text", rendered.text),
        )


Rule = Callable[[EmailFacts], Iterable[Finding]]


def _at(where: tuple[Path, int | None], message: str) -> Finding:
    return Finding(where[0], where[1], message)


def parts_not_empty(email: EmailFacts) -> Iterator[Finding]:
    if not email.visible.strip():
        yield _at(email.locate.default, f"the HTML part is empty (layout {email.layout})")
    if not email.rendered.text.strip():
        yield _at(email.locate.default, f"the plain-text part is empty (layout {email.layout})")


def subject_and_preheader(email: EmailFacts) -> Iterator[Finding]:
    rendered, locate = email.rendered, email.locate
    raw_subject = email.source.subject if email.source is not None else rendered.subject
    if len(rendered.subject) > SUBJECT_MAX:
        yield _at(
            locate.front("subject"),
            f"subject is {len(rendered.subject)} characters; keep it to {SUBJECT_MAX} or fewer",
        )
    if re.search(r"[\r\n\x00-\x1f\x7f\u2028\u2029]", raw_subject):
        yield _at(
            locate.front("subject"), "subject must be one line, without line breaks or control characters"
        )
    if not rendered.preheader.strip():
        yield _at(
            locate.front("preheader"),
            "preheader is missing: add 'preheader:' to the front "
            "matter (the preview line inboxes show after the subject)",
        )


def unsubscribe_link(email: EmailFacts) -> Iterator[Finding]:
    if email.prepared.kind != "marketing":
        return
    unsubscribe, layout = email.sample.unsubscribe_url or "", email.layout
    if unsubscribe not in email.html.hrefs:
        yield _at(
            email.locate.default,
            f"the HTML part has no unsubscribe link (layout {layout} must include the footer)",
        )
    if unsubscribe not in email.rendered.text:
        yield _at(
            email.locate.default,
            f"the plain-text part has no unsubscribe link (layout {layout[:-5]}.txt must include the footer)",
        )


def preferences_link(email: EmailFacts) -> Iterator[Finding]:
    """Every marketing email lets its reader choose fewer emails or a pause, not only leave."""
    if email.prepared.kind != "marketing":
        return
    preferences, layout = email.sample.preferences_url or "", email.layout
    if preferences not in email.html.hrefs:
        yield _at(
            email.locate.default,
            f"the HTML part has no preference-center link (layout {layout} must include the footer)",
        )
    if preferences not in email.rendered.text:
        yield _at(
            email.locate.default,
            f"the plain-text part has no preference-center link "
            f"(layout {layout[:-5]}.txt must include the footer)",
        )


def footer_lines(email: EmailFacts) -> Iterator[Finding]:
    if email.prepared.kind != "marketing":
        return
    for label, needle, case in (
        ("postal address", squash(email.config.practice.postal_address), True),
        ('"education, not medical advice" line', DISCLAIMER, False),
        ("crisis line (call or text 988)", CRISIS, True),
    ):
        for part, haystack in (("HTML", email.visible), ("plain-text", email.text_flat)):
            if (needle if case else needle.lower()) not in (haystack if case else haystack.lower()):
                yield _at(
                    email.locate.default,
                    f"the {part} part has no {label} (check the footer of layout {email.layout})",
                )


def list_unsubscribe_headers(email: EmailFacts) -> Iterator[Finding]:
    headers = email.rendered.headers
    if email.prepared.kind != "marketing":
        if any(name.lower().startswith("list-unsubscribe") for name in headers):
            yield _at(email.locate.default, "a transactional email must not carry List-Unsubscribe headers")
        return
    if f"<{email.sample.unsubscribe_url or ''}>" not in headers.get("List-Unsubscribe", ""):
        yield _at(
            email.locate.default, "the List-Unsubscribe header is missing or has no https unsubscribe link"
        )
    if headers.get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click":
        yield _at(
            email.locate.default, "the List-Unsubscribe-Post: List-Unsubscribe=One-Click header is missing"
        )


def confirmation_link(email: EmailFacts) -> Iterator[Finding]:
    if email.prepared.name != CONFIRMATION_NAME:  # the owner's notices are transactional too
        return
    confirm, layout = email.sample.confirm_url or "", email.layout
    if confirm not in email.html.hrefs:
        yield _at(email.locate.default, f"the HTML part has no confirmation link (layout {layout})")
    if confirm not in email.rendered.text:
        yield _at(
            email.locate.default, f"the plain-text part has no confirmation link (layout {layout[:-5]}.txt)"
        )


def image_alt_text(email: EmailFacts) -> Iterator[Finding]:
    for image in email.html.images:
        if not (image.get("alt") or "").strip():
            src = image.get("src") or ""
            where = email.locate.find(f"]({src}") if src else email.locate.default
            yield _at(where, f"image {src or '(no src)'} has no alt text: write ![what it shows]({src})")


def _body_links(source: EmailSource | None) -> set[str]:
    """Hrefs and image sources written in the Markdown body (not the layout's footer)."""
    if source is None:
        return set()
    found: set[str] = set()
    for token in markdown_parser().parse(source.body):
        for child in token.children or []:
            for attr in ("href", "src"):
                value = child.attrGet(attr)
                if value:
                    found.add(str(value))
    return found


def _http_link(email: EmailFacts, url: str) -> Finding:
    from_config = email.locate.config_key(url)
    if from_config:
        key, value = from_config
        return _at(
            email.locate.config_line(key), f"{key} is {value}: links built from it use http://; use https://"
        )
    return _at(email.locate.find(url), f"link {url} uses http://; use https://")


def _html_urls(email: EmailFacts) -> list[str]:
    return [*email.html.hrefs, *email.html.srcs]


def https_links(email: EmailFacts) -> Iterator[Finding]:
    """Every link and image of the HTML part is absolute https (mailto: in the footer only)."""
    body_links = _body_links(email.source)
    for url in dict.fromkeys(_html_urls(email)):
        lowered = url.lower()
        if lowered.startswith("http://"):
            yield _http_link(email, url)
        elif lowered.startswith("https://") and len(url) > len("https://"):
            continue
        elif lowered.startswith("mailto:") and url not in body_links:
            continue  # the footer's mailto
        else:
            hint = "mailto: links belong in the footer only; " if lowered.startswith("mailto:") else ""
            where = email.locate.find(url) if url else email.locate.default
            yield _at(
                where,
                f"link {url or '(empty)'} is not an absolute https:// "
                f"URL ({hint}write the full https://... address)",
            )


def https_links_in_text(email: EmailFacts) -> Iterator[Finding]:
    """http:// in the plain-text part, unless https_links already named it in the HTML part."""
    named = {url for url in _html_urls(email) if url.lower().startswith("http://")}
    for http_match in _HTTP_IN_TEXT.finditer(email.rendered.text):
        url = http_match.group(0)
        if url not in named and not any(seen.startswith(url) or url.startswith(seen) for seen in named):
            named.add(url)
            yield _http_link(email, url)


def template_syntax_rendered(email: EmailFacts) -> Iterator[Finding]:
    for part, content in email.parts:
        match = _UNRENDERED.search(content)
        if match:
            snippet = _UNRENDERED_SNIPPET.search(content)
            text = snippet.group(0) if snippet else match.group(0)
            where = email.locate.find(text)
            if where == email.locate.default:
                where = email.locate.find(match.group(0))
            yield _at(
                where,
                f"unrendered template syntax {html_lib.unescape(text)!r} in the "
                f"{part} part: only {{{{ practice_name }}}} may be used in the text",
            )


def no_substitution_tags(email: EmailFacts) -> Iterator[Finding]:
    for part, content in email.parts:
        for tag in SUBSTITUTION_TAGS:
            if tag in content:
                yield _at(
                    email.locate.find(tag),
                    f"{tag} is a reserved substitution tag and must not appear in the {part} part",
                )


# A new rule is a function taking EmailFacts and yielding Findings, added here.
RULES: tuple[Rule, ...] = (
    parts_not_empty,
    subject_and_preheader,
    unsubscribe_link,
    preferences_link,
    footer_lines,
    list_unsubscribe_headers,
    confirmation_link,
    image_alt_text,
    https_links,
    https_links_in_text,
    template_syntax_rendered,
    no_substitution_tags,
)
