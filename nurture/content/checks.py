"""`nurture check`: load every campaign, newsletter and template, render each email
for a sample subscriber, and lint what comes out.

Each finding is "file:line: what is wrong", pointing at the Markdown the owner
edits where possible: the front-matter line for subject and preheader, the line
holding the offending text for body problems (else the first body line). The
rules (issue 3):

- every referenced template and file exists; every step and newsletter renders;
- each marketing email has, in both the HTML and the text part, the unsubscribe
  link, the postal address, the "education, not medical advice" line and the
  crisis line, and the List-Unsubscribe / List-Unsubscribe-Post headers;
  the confirmation has its confirm link and no List-Unsubscribe headers;
- subject at most 78 characters and on one line; preheader present;
- alt text on every <img>;
- no http:// links; every link absolute https (mailto: only in the footer);
- no unrendered template syntax ({{ {% [[ [%) or substitution tags left in the output.

`check_email` runs the rules on one prepared email (newsletter scheduling uses it
to refuse a newsletter with any finding).
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

from markdown_it import MarkdownIt

from nurture.content.campaigns import NEWSLETTERS_DIR, EmailSource, load_campaign, load_email, newsletter_files
from nurture.config import Config
from nurture.errors import ContentError
from nurture.content.preview import newsletter_name, sample_recipient
from nurture.content.rendering import (
    SUBSTITUTION_TAGS,
    TEMPLATES,
    PreparedEmail,
    Renderer,
    front_line,
)

SUBJECT_MAX = 78
DISCLAIMER = "education, not medical advice"
CRISIS = "988"
_UNRENDERED = re.compile(r"(\{\{|\{%|\[\[|\[%)")
_UNRENDERED_SNIPPET = re.compile(r"(\{\{|\{%|\[\[|\[%).{0,40}?(\}\}|%\}|\]\]|%\])")
_HTTP_IN_TEXT = re.compile(r"http://[^\s)>\]\"']+", re.IGNORECASE)
_LOCATED = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<what>.*)$")
_UNLOCATED = re.compile(r"^(?P<path>[^\s:][^:]*?): (?P<what>.*)$")


@dataclass(frozen=True, order=True)
class Finding:
    path: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        path = self.path
        try:
            path = path.relative_to(Path.cwd()) if path.is_absolute() else path
        except ValueError:
            pass  # outside the current folder: keep it absolute
        where = f"{path}:{self.line}" if self.line else str(path)
        return f"{where}: {self.message}"


@dataclass
class CheckReport:
    findings: list[Finding] = field(default_factory=list)
    emails: int = 0  # emails that were rendered and linted
    passed: int = 0  # of those, emails with no finding
    unchecked: list[str] = field(default_factory=list)  # series whose campaign.yaml did not load

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        if self.ok:
            return f"all {self.emails} emails pass"
        problems = len(self.findings)
        summary = f"{problems} problem{'s' if problems != 1 else ''} found; {self.passed} of {self.emails} email{'s' if self.emails != 1 else ''} checked pass"
        if self.unchecked:
            # Its emails were never rendered: "n of n pass" alone would read as all clear.
            summary += f"; not checked: the series {', '.join(self.unchecked)} (fix its campaign.yaml first)"
        return summary

    def render(self) -> str:
        return "\n".join([*(str(finding) for finding in self.findings), self.summary()])


# -- reading rendered HTML -------------------------------------------------------------


class _HtmlFacts(HTMLParser):
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


def html_facts(content: str) -> _HtmlFacts:
    parser = _HtmlFacts()
    parser.feed(content)
    parser.close()
    return parser


def _squash(text: str) -> str:
    return " ".join(text.split())


# -- locating a problem in the files the owner edits ------------------------------------


class _Locator:
    def __init__(self, config: Config, source: EmailSource | None, prepared: PreparedEmail | None) -> None:
        self.config = config
        self.source = source
        self.template = prepared.template if prepared is not None else config.templates_dir / TEMPLATES["step"][0]

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
            candidates.extend(sorted(p for p in self.config.templates_dir.rglob("*") if p.is_file() and p != self.template))
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


def _body_links(source: EmailSource | None) -> set[str]:
    """Hrefs and image sources written in the Markdown body (not the layout's footer)."""
    if source is None:
        return set()
    found: set[str] = set()
    for token in MarkdownIt("commonmark", {"html": False}).parse(source.body):
        for child in token.children or []:
            for attr in ("href", "src"):
                value = child.attrGet(attr)
                if value:
                    found.add(str(value))
    return found


def check_email(config: Config, renderer: Renderer, source: EmailSource | None, prepared: PreparedEmail) -> list[Finding]:
    """Every content rule on one prepared email, rendered for the sample subscriber."""
    locate = _Locator(config, source, prepared)
    findings: list[Finding] = []

    def add(where: tuple[Path, int | None], message: str) -> None:
        findings.append(Finding(where[0], where[1], message))

    layout = prepared.template.name
    sample = sample_recipient(config, prepared.name).recipient
    try:
        rendered = prepared.render(sample)
    except ContentError as exc:
        return _findings_from_error(exc)
    html_part, text_part = rendered.html, rendered.text
    facts = html_facts(html_part)
    visible = facts.text
    text_flat = _squash(text_part)

    # Both parts.
    if not visible.strip():
        add(locate.default, f"the HTML part is empty (layout {layout})")
    if not text_part.strip():
        add(locate.default, f"the plain-text part is empty (layout {layout})")

    # Subject and preheader.
    raw_subject = source.subject if source is not None else rendered.subject
    if len(rendered.subject) > SUBJECT_MAX:
        add(locate.front("subject"), f"subject is {len(rendered.subject)} characters; keep it to {SUBJECT_MAX} or fewer")
    if re.search(r"[\r\n\x00-\x1f\x7f\u2028\u2029]", raw_subject):
        add(locate.front("subject"), "subject must be one line, without line breaks or control characters")
    if not rendered.preheader.strip():
        add(locate.front("preheader"), "preheader is missing: add 'preheader:' to the front matter (the preview line inboxes show after the subject)")

    # Footer and headers.
    if prepared.kind == "marketing":
        unsubscribe = sample.unsubscribe_url or ""
        if unsubscribe not in facts.hrefs:
            add(locate.default, f"the HTML part has no unsubscribe link (layout {layout} must include the footer)")
        if unsubscribe not in text_part:
            add(locate.default, f"the plain-text part has no unsubscribe link (layout {layout[:-5]}.txt must include the footer)")
        for label, needle, case in (
            ("postal address", _squash(config.practice.postal_address), True),
            ('"education, not medical advice" line', DISCLAIMER, False),
            ("crisis line (call or text 988)", CRISIS, True),
        ):
            for part, haystack in (("HTML", visible), ("plain-text", text_flat)):
                if (needle if case else needle.lower()) not in (haystack if case else haystack.lower()):
                    add(locate.default, f"the {part} part has no {label} (check the footer of layout {layout})")
        header = rendered.headers.get("List-Unsubscribe", "")
        if f"<{unsubscribe}>" not in header:
            add(locate.default, "the List-Unsubscribe header is missing or has no https unsubscribe link")
        if rendered.headers.get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click":
            add(locate.default, "the List-Unsubscribe-Post: List-Unsubscribe=One-Click header is missing")
    else:
        confirm = sample.confirm_url or ""
        if confirm not in facts.hrefs:
            add(locate.default, f"the HTML part has no confirmation link (layout {layout})")
        if confirm not in text_part:
            add(locate.default, f"the plain-text part has no confirmation link (layout {layout[:-5]}.txt)")
        if any(name.lower().startswith("list-unsubscribe") for name in rendered.headers):
            add(locate.default, "a transactional email must not carry List-Unsubscribe headers")

    # Images.
    for image in facts.images:
        if not (image.get("alt") or "").strip():
            src = image.get("src") or ""
            add(locate.find(f"]({src}") if src else locate.default, f"image {src or '(no src)'} has no alt text: write ![what it shows]({src})")

    # Links.
    body_links = _body_links(source)
    seen_http: set[str] = set()

    def http_link(url: str) -> None:
        seen_http.add(url)
        from_config = locate.config_key(url)
        if from_config:
            key, value = from_config
            add(locate.config_line(key), f"{key} is {value}: links built from it use http://; use https://")
        else:
            add(locate.find(url), f"link {url} uses http://; use https://")

    for url in [*facts.hrefs, *facts.srcs]:
        lowered = url.lower()
        if lowered.startswith("http://"):
            if url not in seen_http:
                http_link(url)
        elif lowered.startswith("https://") and len(url) > len("https://"):
            continue
        elif lowered.startswith("mailto:") and url not in body_links:
            continue  # the footer's mailto
        else:
            hint = "mailto: links belong in the footer only; " if lowered.startswith("mailto:") else ""
            add(locate.find(url) if url else locate.default, f"link {url or '(empty)'} is not an absolute https:// URL ({hint}write the full https://... address)")
    for http_match in _HTTP_IN_TEXT.finditer(text_part):
        url = http_match.group(0)
        if url not in seen_http and not any(seen.startswith(url) or url.startswith(seen) for seen in seen_http):
            http_link(url)

    # Unrendered template syntax and leftover substitution tags.
    for part, content in (("subject", rendered.subject), ("preheader", rendered.preheader), ("HTML", html_part), ("plain-text", text_part)):
        match = _UNRENDERED.search(content)
        if match:
            snippet = _UNRENDERED_SNIPPET.search(content)
            text = snippet.group(0) if snippet else match.group(0)
            where = locate.find(text)
            if where == locate.default:
                where = locate.find(match.group(0))
            add(where, f"unrendered template syntax {html_lib.unescape(text)!r} in the {part} part: only {{{{ practice_name }}}} may be used in the text")
        for tag in SUBSTITUTION_TAGS:
            if tag in content:
                add(locate.find(tag), f"{tag} is a reserved substitution tag and must not appear in the {part} part")
    return sorted(set(findings), key=lambda f: (str(f.path), f.line or 0, f.message))


def _findings_from_error(exc: ContentError) -> list[Finding]:
    findings = []
    for line in str(exc).splitlines():
        located = _LOCATED.match(line)
        if located:
            findings.append(Finding(Path(located["path"]), int(located["line"]) or None, located["what"]))
            continue
        unlocated = _UNLOCATED.match(line)
        if unlocated:
            findings.append(Finding(Path(unlocated["path"]), None, unlocated["what"]))
        elif line.strip():
            findings.append(Finding(Path("."), None, line.strip()))
    return findings


def check_content(config: Config) -> CheckReport:
    """Load, render and lint everything under campaigns/ and templates/."""
    report = CheckReport()
    findings: list[Finding] = []

    # `...`: the callers' lambdas bind loop variables as defaulted parameters; lint calls them with none.
    def lint(source: EmailSource | None, prepare: Callable[..., PreparedEmail]) -> None:
        try:
            prepared = prepare()
        except ContentError as exc:
            report.emails += 1
            findings.extend(_findings_from_error(exc))
            return
        found = check_email(config, renderer, source, prepared)
        report.emails += 1
        report.passed += 0 if found else 1
        findings.extend(found)

    for filename in sorted({name for pair in TEMPLATES.values() for name in pair}):
        path = config.templates_dir / filename
        if not path.is_file():
            findings.append(Finding(path, None, "template not found"))

    renderer = Renderer(config)
    root = config.campaigns_dir
    if not root.is_dir():
        findings.append(Finding(root, None, "campaigns folder not found"))
    else:
        for folder in sorted(root.iterdir()):
            if not folder.is_dir() or folder.name == NEWSLETTERS_DIR or folder.name.startswith("."):
                continue
            try:
                campaign = load_campaign(folder)
            except ContentError as exc:
                findings.extend(_findings_from_error(exc))
                report.unchecked.append(folder.name)
                continue
            for step in campaign.steps:
                lint(step.email, lambda c=campaign, s=step: renderer.prepare_step(c, s))
        for path in newsletter_files(root):
            try:
                email = load_email(path)
            except ContentError as exc:
                report.emails += 1
                findings.extend(_findings_from_error(exc))
                continue
            lint(email, lambda e=email, p=path: renderer.prepare_newsletter(e, newsletter_name(p)))
    lint(None, renderer.prepare_confirmation)

    unique: list[Finding] = []
    for finding in findings:
        if finding not in unique:
            unique.append(finding)
    report.findings = unique
    return report
