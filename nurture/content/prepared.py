"""A prepared email and what it turns into per recipient.

`PreparedEmail` holds one email (a step, a newsletter or the confirmation) whose
MJML is already compiled; per recipient, `render()` is one cheap Jinja render of
each part, and `envelope()` + `batch()` give the transport the parts once, with
substitution tags (`-first_name_html-`...) and each recipient's values, already
escaped for HTML, as `Envelope.substitutions`.
`apply_substitutions(batch.html, envelope.substitutions)` equals
`render(recipient).html` exactly.

Subscriber-supplied values never reach a header unchecked: the first name is
cleaned of control characters (CR/LF included) and never goes into the subject;
addresses and URLs with control characters or spaces are refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jinja2
from markupsafe import escape

from nurture.content.campaigns import EmailSource
from nurture.errors import InputError
from nurture.providers.base import Batch, Envelope, Sender

Kind = Literal["marketing", "transactional"]

FIRST_NAME_FALLBACK = "there"  # "Hi there,"
FIRST_NAME_MAX = 60
ONE_CLICK = "List-Unsubscribe=One-Click"

# Per-recipient placeholders (stage-2 variables) and the substitution tag each becomes
# in a Batch, per part. URLs get an HTML and a text tag too: the HTML value is escaped.
PLACEHOLDERS = ("first_name", "unsubscribe_url", "preferences_url", "confirm_url")
HTML_TAGS = {name: f"-{name}_html-" for name in PLACEHOLDERS}
TEXT_TAGS = {name: f"-{name}_text-" for name in PLACEHOLDERS}
SUBSTITUTION_TAGS = tuple(HTML_TAGS.values()) + tuple(TEXT_TAGS.values())

UNSAFE_URL = re.compile(r"[\s<>\"'\\`{}|^\x00-\x1f\x7f]")


# -- public data -----------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    email: str
    first_name: str | None
    unsubscribe_url: str | None = None  # marketing emails
    confirm_url: str | None = None  # the confirmation email
    preferences_url: str | None = None  # marketing emails: the reader's preference center


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
    # Repairs rather than refuses (unlike nurture.addresses.clean_first_name):
    # a stored name is sent as best it can be, and a preview or test may pass anything.
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
        raise InputError(
            f"recipient address {value!r} is not usable: it is "
            "empty, has no @, or holds spaces or line breaks"
        )
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
    if not value.startswith(("https://", "http://")) or UNSAFE_URL.search(value):
        raise InputError(
            f"{what} {value!r} is not a usable link: it must be http(s) without spaces, quotes or line breaks"
        )
    return value


# -- the prepared email ------------------------------------------------------------


@dataclass(frozen=True)
class CompiledParts:
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
        parts: CompiledParts,
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
        self._wants_preferences = "preferences_url" in used
        self._mailto_target = (
            f", <mailto:{unsubscribe_mailto}?subject=unsubscribe>" if unsubscribe_mailto else ""
        )
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

    def _values(
        self,
        first_name: str | None,
        unsubscribe_url: str | None,
        confirm_url: str | None,
        preferences_url: str | None = None,
    ) -> tuple[str | None, dict[str, str]]:
        """The cleaned first name (None if absent) and the raw per-recipient values."""
        first = clean_first_name(first_name)
        values = {"first_name": first or FIRST_NAME_FALLBACK}
        if self._wants_unsubscribe:
            values["unsubscribe_url"] = _checked_url("unsubscribe_url", unsubscribe_url)
        if self._wants_confirm:
            values["confirm_url"] = _checked_url("confirm_url", confirm_url)
        if self._wants_preferences:
            values["preferences_url"] = _checked_url("preferences_url", preferences_url)
        return first, values

    def _headers(self, values: Mapping[str, str]) -> dict[str, str]:
        if self.kind != "marketing":
            return {}
        # "<url>" or "<url>, <mailto:...?subject=unsubscribe>"
        return {
            "List-Unsubscribe": f"<{values['unsubscribe_url']}>{self._mailto_target}",
            "List-Unsubscribe-Post": ONE_CLICK,
        }

    def render(self, recipient: Recipient) -> RenderedEmail:
        """This email for one recipient (preview, check, tests)."""
        _checked_email(recipient.email)
        _, values = self._values(
            recipient.first_name, recipient.unsubscribe_url, recipient.confirm_url, recipient.preferences_url
        )
        context = {name: values.get(name, "") for name in PLACEHOLDERS}
        return RenderedEmail(
            subject=self.subject,
            preheader=self.preheader,
            text=self._parts.text.render(context),
            html=self._parts.html.render(context),
            headers=self._headers(values),
        )

    def envelope(
        self,
        delivery_id: str,
        recipient: Recipient,
        custom_args: Mapping[str, str],
        *,
        stream: str = "",
        step: int | None = None,
    ) -> Envelope:
        """One recipient of a batch: per-recipient values as substitutions (HTML ones escaped).

        `stream` and `step` name the email locally (see Envelope); given here, no copy is made to add them."""
        return self.envelope_for(
            delivery_id,
            recipient.email,
            recipient.first_name,
            recipient.unsubscribe_url,
            dict(custom_args),
            stream=stream,
            step=step,
            confirm_url=recipient.confirm_url,
            preferences_url=recipient.preferences_url,
        )

    def envelope_for(
        self,
        delivery_id: str,
        email: str,
        first_name: str | None,
        unsubscribe_url: str | None,
        custom_args: Mapping[str, str],
        stream: str = "",
        step: int | None = None,
        *,
        confirm_url: str | None = None,
        preferences_url: str | None = None,
    ) -> Envelope:
        """`envelope()` from the values themselves, with `custom_args` kept as given (not
        copied): what a sending pass calls once per email, with no Recipient to build."""
        email = _checked_email(email)
        first, values = self._values(first_name, unsubscribe_url, confirm_url, preferences_url)
        substitutions: dict[str, str] = {}
        for name, html_tag, text_tag in self._tags:  # the used placeholders, in PLACEHOLDERS order
            value = values[name]
            substitutions[html_tag] = _html_value(value)
            substitutions[text_tag] = value
        return Envelope(
            delivery_id,
            email,
            first,
            self.subject,
            self._headers(values),
            substitutions,
            custom_args,
            stream,
            step,
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
