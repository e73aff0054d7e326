"""The bytes of a batch's messages, written without building an EmailMessage per email.

`nurture.providers.outbox.build_message` builds each message with the standard `email`
package; it is the reference, and what the preview shows. Parsing and folding every
header through `email.headerregistry` costs about 1.5 ms an email, which made the
outbox (the default transport) fifteen times slower than a SendGrid request. A
`BatchWriter` does the part shared by a batch once (the sender, the date, the part
headers) and per email only what differs: the recipient, the links, the bodies'
substitutions, quoted-printable encoded by `binascii` (C). Quoted-printable is encoded
line by line (a line's soft breaks and escapes depend on that line alone), so the lines of
a body that hold no substitution tag, nearly all of them, are encoded once per batch
(`_Body`); per email only the few lines with a tag are substituted and encoded, and of
those only the middle, from the last soft break before the first tag to the end of the
last tag: the fixed text on either side is encoded once (`_TaggedLine`).

The output is the same message (tests/unit/test_mime_writer.py parses both and compares
every header and both bodies): headers folded at 76 characters where they can be,
quoted-printable lines of at most 76 (RFC 2045 6.7), CRLF line ends. Anything the fast
path does not cover (a non-ASCII or quoted display name, a non-ASCII subject, a header
outside the few this project writes) goes through the `email` package's own folding.
"""

from __future__ import annotations

import binascii
import itertools
import random
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address
from email.policy import SMTP
from email.utils import format_datetime

from nurture.providers.base import Batch, Envelope, apply_substitutions, ascii_address

# Quoted-printable lines may not exceed 76 characters (RFC 2045 6.7); headers fold at 76 too.
# refold_source="none" leaves the headers folded here (the List-* ones) as they are.
POLICY = SMTP.clone(max_line_length=76, refold_source="none")
LINE_LIMIT = 76

# A display name that needs no quoting or encoding in a header (RFC 5322 atext and spaces).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")
_CRLF = re.compile(r"\r\n|\r|\n")


def fold_list_header(name: str, value: str) -> str:
    """A list header (`<url>, <mailto:...>`) with one item a line once it is too long for one.

    The email package would otherwise turn an unbreakable URL into an RFC 2047
    encoded word, which no mail client reads as a List-Unsubscribe link.
    """
    if "\r" in value or "\n" in value:
        raise ValueError(f"header {name} holds a line break")
    if len(name) + 2 + len(value) <= LINE_LIMIT:
        return value
    return ",\r\n ".join(item.strip() for item in value.split(","))


def _qp(text: str) -> bytes:
    """Quoted-printable UTF-8 with CRLF line ends and soft breaks at 76 characters."""
    crlf = _CRLF.sub("\r\n", text)
    if not crlf.endswith("\r\n"):
        crlf += "\r\n"  # as EmailMessage.set_content does: a text part ends with a line end
    return _qp_lines(crlf)


def _qp_lines(crlf: str) -> bytes:
    """`_qp` of a text whose every line already ends with CRLF."""
    return _qp_bytes(crlf.encode("utf-8"))


def _qp_bytes(data: bytes) -> bytes:
    """Quoted-printable of UTF-8 bytes; CRLF line ends (soft breaks "=\r\n") when the first LF has a CR."""
    return binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)


def _has_line_break(values: Sequence[str]) -> bool:
    return any("\n" in value or "\r" in value for value in values)


# Stands in for the first byte of a line's fixed tail while the middle before it is encoded
# alone (`_TaggedLine`). `b2a_qp` judges a byte by the next one only as LF, CR, NUL, end of
# data or anything else; "x" is "anything else", like a tail's first byte (never LF or CR
# inside a line, and a tail starting with NUL is not cached). As the byte before "\r\n" it is
# never escaped, so it is the output's byte before the line end, with maybe a soft break.
_STAND_IN = b"x"


def _fixed_head(head: bytes) -> tuple[bytes, int]:
    """The encoding of a line's fixed start `head` up to and including a soft break, and how
    many bytes of `head` that holds: the last break the rest of the line cannot move.

    `b2a_qp` decides whether to break before a byte from the column, the byte and the next
    byte, so a break before `head[cut]` is fixed when `head[cut + 1]` is in `head` too. After
    it the column is 0, and the rest encodes as a line of its own would: each byte is judged
    by itself, its next byte and the column, except a "." with a line end (or NUL) next, whose
    escape reads the column from before the break: no break before a "." is used.
    Returns (b"", 0) when no break fits.
    """
    encoded = _qp_bytes(head + b"\r\n")  # CRLF-ended so the breaks are "=\r\n", as in the line
    # "=\r\n" is only ever a soft break (an escape is "=" and two hex digits; the head holds no
    # CR), and each "=" inside a piece starts an escape of one input byte.
    best, out, cut = (b"", 0), 0, 0
    for piece in encoded.split(b"=\r\n")[:-1]:
        out += len(piece) + 3
        cut += len(piece) - 2 * piece.count(b"=")
        if cut + 2 <= len(head) and head[cut] != ord("."):
            best = (encoded[:out], cut)
    return best


class _TaggedLine:
    """A template line holding a tag: per email `_qp_lines(line + "\r\n")` of the substituted
    line, with only its middle encoded. Bytes are sliced, not characters: `b2a_qp` works byte
    by byte (a soft break may fall inside an escaped UTF-8 character).

    - head: the fixed start, encoded once up to its last safe soft break (`_fixed_head`).
    - tail: the fixed text after the last tag. How it encodes depends only on the column it
      starts at, 0 to 75 (`b2a_qp` breaks before any byte that would end past column 75,
      unless a line end follows it), so each column's encoding is cached.
    - middle: encoded per email, followed by a stand-in for the tail's first byte so that its
      last byte is judged as in the whole line; the column the tail starts at is read from the
      output (`b2a_qp`'s column is the count of bytes written since the last line break).

    Where a tag could straddle the edge of the head or the tail (a value may complete a later
    tag with fixed text next to it), the whole line is substituted per email and whether it
    starts and ends with those fixed bytes is checked, not assumed; a line that does not is
    encoded without the head, or whole.
    """

    def __init__(self, line: str, tags: Sequence[str]) -> None:
        self.template = line
        spans = [(line.find(tag), line.rfind(tag) + len(tag)) for tag in tags if tag in line]
        first, last = min(start for start, _ in spans), max(end for _, end in spans)
        head, tail = line[:first].encode("utf-8"), line[last:].encode("utf-8")
        self._head, self._cut = _fixed_head(head)
        # The bytes the head's encoding was decided by: up to the lookahead after the break.
        self._start = head[: self._cut + 2] if self._cut else b""
        self._tail = b"" if tail.startswith(b"\0") else tail  # NUL is judged unlike the stand-in
        self._tails: list[bytes | None] = [None] * LINE_LIMIT  # the tail's encoding by column
        # Substituting the middle alone gives the line `apply_substitutions` gives when no tag
        # can ever reach across into the head or the tail: the head holds no tag (it ends at
        # the first) nor the tail (it starts after the last), so a tag found there in some
        # step of the replacements would have to straddle the edge, starting with the head's
        # last characters or ending with the tail's first. When none can, per email only the
        # middle is substituted and encoded, not the whole line (a line of an HTML body is
        # often kilobytes long).
        straddles = any(
            line[:first].endswith(tag[:size]) or line[last:].startswith(tag[-size:])
            for tag in tags
            for size in range(1, len(tag))
        )
        self._middle = None if straddles else line[first:last]
        self._head_rest = head[self._cut :]  # encoded with the middle, after the head's last break
        self._raw_tail = tail
        self._fixed_empty = not head and not tail

    def encode_with(
        self, substitutions: Mapping[str, str], middles: Iterator[str] | None = None
    ) -> bytes | None:
        """`encode` of the template's line with `substitutions` applied; None when that line is empty.

        `middles`, when given, yields this line's middle already substituted (`_Middles`).
        """
        middle = self._middle
        if middle is None:
            line = apply_substitutions(self.template, substitutions)
            return self.encode(line) if line else None
        if middles is not None:
            middle = next(middles)
        else:
            for tag, value in substitutions.items():
                middle = middle.replace(tag, value)
        if not middle and self._fixed_empty:
            return None
        data = self._head_rest + middle.encode("utf-8")
        tail = self._tail
        if not tail:
            return self._head + _qp_bytes(data + self._raw_tail + b"\r\n")
        return self._head + self._with_tail(data, tail)

    def encode(self, line: str) -> bytes:
        """The substituted `line` encoded, CRLF-ended. It holds no CR or LF (`_Body` makes sure):
        an LF would make a line end of its own, and could switch `b2a_qp` to LF line ends."""
        data = line.encode("utf-8")
        if not data.startswith(self._start):
            return _qp_bytes(data + b"\r\n")
        cut, tail = self._cut, self._tail
        end = len(data) - len(tail)
        if not tail or end < cut or not data.endswith(tail):
            return self._head + _qp_bytes(data[cut:] + b"\r\n")
        return self._head + self._with_tail(data[cut:end], tail)

    def _with_tail(self, data: bytes, tail: bytes) -> bytes:
        """The encoding of `data` (what follows the head's last break, up to the tail) and the tail."""
        middle = _qp_bytes(data + _STAND_IN + b"\r\n")[:-3]
        if middle.endswith(b"=\r\n"):
            middle = middle[:-3]  # a break before the stand-in: the tail's encoding has it
        column = len(middle) - middle.rfind(b"\n") - 1
        encoded = self._tails[column]
        if encoded is None:
            # Fillers bring the tail to its column: "x" is never escaped, and 75 or fewer never
            # break, so the tail's bytes are judged at the column they have in the line.
            encoded = _qp_bytes(_STAND_IN * column + tail + b"\r\n")[column:]
            self._tails[column] = encoded
        return middle + encoded


class _Body:
    """One body template of a batch, for one set of substitution tags: `_qp` of the template
    with each email's substitutions, the lines without a tag encoded once.

    Equal to `_qp(apply_substitutions(template, substitutions))` byte for byte (a test holds
    them side by side) because `b2a_qp` with CRLF line ends treats every line on its own: a
    line's soft breaks, its escapes and the protection of its trailing white space depend on
    that line alone. That holds only while line breaks stay where the template has them: a
    template with a CR (a lone CR next to a tag whose value is empty would join two breaks
    into one CRLF), or a tag or value holding CR or LF, goes through `_qp` whole.
    """

    def __init__(self, template: str, tags: Sequence[str]) -> None:
        self._tags = tuple(tags)
        self.usable = "\r" not in template and not _has_line_break(self._tags)
        # bytes: lines without a tag, encoded; a line with one, substituted and encoded per email.
        self._chunks: list[bytes | _TaggedLine] = []
        self._last: _TaggedLine | None = None  # a last line without a line end that holds a tag
        if not self.usable:
            return
        lines = template.split("\n")
        tail = lines.pop()  # "" when the template ends with a line end
        plain: list[str] = []
        for line in lines:
            if any(tag in line for tag in self._tags):
                if plain:
                    self._chunks.append(_qp_lines("".join(plain)))
                    plain = []
                self._chunks.append(_TaggedLine(line, self._tags))
            else:
                plain.append(line + "\r\n")
        if tail and not any(tag in tail for tag in self._tags):
            plain.append(tail + "\r\n")  # as `_qp` ends a text: with a line end
        elif tail:
            self._last = _TaggedLine(tail, self._tags)
        if plain or not (self._chunks or self._last):
            self._chunks.append(_qp("".join(plain)))  # an empty template: one empty line, as `_qp` makes

    def tagged_lines(self) -> list[_TaggedLine]:
        """The lines that hold a tag, in order."""
        lines = [chunk for chunk in self._chunks if isinstance(chunk, _TaggedLine)]
        return lines + [self._last] if self._last is not None else lines

    def encode(self, substitutions: Mapping[str, str], middles: Iterator[str] | None = None) -> bytes:
        """`middles`: the substituted middles of this body's lines, in order (`_Middles`)."""
        out = [
            chunk if isinstance(chunk, bytes) else chunk.encode_with(substitutions, middles) or b"\r\n"
            for chunk in self._chunks
        ]
        if self._last is not None:
            last = self._last.encode_with(substitutions, middles)
            if last is not None:
                out.append(last)
            elif not out:
                out.append(b"\r\n")  # `_qp("")`: an empty text is one empty line
            # An empty last line after other lines adds nothing: the text already ends with a line end.
        return b"".join(out)


class _Middles:
    """The middles of all the tagged lines of a batch's bodies (those substituted alone, see
    `_TaggedLine`), substituted per email in one string: one `str.replace` per tag, not
    one per tag and line.

    Joined by LF, they split back into the same pieces: no tag holds a line break (else the
    body is not `usable`) and no value does (else `_Body` is not used for that email), so no
    tag is ever found across an LF and no value adds one.
    """

    def __init__(self, bodies: Sequence[_Body]) -> None:
        middles = [line._middle for body in bodies for line in body.tagged_lines()]
        self._joined = "\n".join(middle for middle in middles if middle is not None)

    def substituted(self, substitutions: Mapping[str, str]) -> Iterator[str]:
        joined = self._joined
        for tag, value in substitutions.items():
            joined = joined.replace(tag, value)
        return iter(joined.split("\n"))


class BatchWriter:
    """Writes each envelope of one batch as the bytes of a complete message."""

    def __init__(self, batch: Batch) -> None:
        self._batch = batch
        sender = batch.sender
        self._from = self._fold("From", Address(sender.from_name, addr_spec=sender.from_email))
        self._reply_to = self._fold("Reply-To", sender.reply_to) if sender.reply_to else b""
        self._date = self._fold("Date", format_datetime(batch.sent_at or datetime.now(UTC)))
        self._subjects: dict[str, bytes] = {}
        # Headers the same for every email of the batch (List-Unsubscribe-Post) are folded once;
        # those of one reader (their own link) are kept too, until the batch is written.
        self._header_lines: dict[tuple[str, str], bytes] = {}
        self._bodies: dict[tuple[str, ...], tuple[_Body, _Body, _Middles]] = {}  # by the envelopes' tags
        # Boundaries need not be unpredictable: a quoted-printable part never holds "==" (every
        # "=" in it starts an escape or a soft break), so no body can contain one. One random
        # start per batch and a count per email: no system call or random draw per email.
        self._boundary_start = f"==============={random.randrange(10**13):013d}"
        self._emails = itertools.count()

    def _fold(self, name: str, value: object) -> bytes:
        """One header through the email package: parsed, encoded where needed, folded."""
        return POLICY.fold_binary(name, POLICY.header_factory(name, value))

    def _to(self, envelope: Envelope) -> bytes:
        address = ascii_address(envelope.to_email)
        name = envelope.to_name or ""
        line = f"To: {name} <{address}>" if name else f"To: {address}"
        if _PLAIN_NAME.fullmatch(name) and name == name.strip() and "  " not in name and len(line) <= 76:
            return line.encode("ascii") + b"\r\n"
        return self._fold("To", Address(name, addr_spec=address))

    def _subject(self, subject: str) -> bytes:
        folded = self._subjects.get(subject)
        if folded is None:
            folded = self._fold("Subject", subject)
            self._subjects[subject] = folded
        return folded

    def _headers(self, headers: Mapping[str, str]) -> bytes:
        out = []
        for name, value in headers.items():
            line = self._header_lines.get((name, value))
            if line is None:
                line = self._header_lines[name, value] = self._header(name, value)
            out.append(line)
        return b"".join(out)

    def _header(self, name: str, value: str) -> bytes:
        if name.lower().startswith("list-"):
            folded = fold_list_header(name, value)
            if folded.isascii():
                return f"{name}: {folded}\r\n".encode("ascii")
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} holds a line break")
        return self._fold(name, value)

    def _encoded(self, substitutions: Mapping[str, str]) -> tuple[bytes, bytes]:
        """Both bodies of one email, quoted-printable: through the batch's `_Body`s when they can."""
        tags = tuple(substitutions)
        bodies = self._bodies.get(tags)
        if bodies is None:
            text, html = _Body(self._batch.text, tags), _Body(self._batch.html, tags)
            bodies = self._bodies[tags] = (text, html, _Middles((text, html)))
        text, html, middles = bodies
        if text.usable and html.usable and not _has_line_break(tuple(substitutions.values())):
            substituted = middles.substituted(substitutions)  # text's lines first, then html's
            return text.encode(substitutions, substituted), html.encode(substitutions, substituted)
        return (
            _qp(apply_substitutions(self._batch.text, substitutions)),
            _qp(apply_substitutions(self._batch.html, substitutions)),
        )

    def message(self, envelope: Envelope, message_id: str) -> bytes:
        boundary = f"{self._boundary_start}{next(self._emails):06d}=="
        text, html = self._encoded(envelope.substitutions)
        start = f"--{boundary}\r\n".encode("ascii")
        return b"".join(
            (
                self._from,
                self._to(envelope),
                self._reply_to,
                self._subject(envelope.subject),
                self._date,
                b"Message-ID: " + message_id.encode("ascii") + b"\r\n",
                self._headers(envelope.headers),
                b"MIME-Version: 1.0\r\n",
                b'Content-Type: multipart/alternative;\r\n boundary="' + boundary.encode("ascii") + b'"\r\n',
                b"\r\n",
                start,
                b'Content-Type: text/plain; charset="utf-8"\r\n',
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                text,
                b"\r\n",  # the delimiter's own line end (RFC 2046 5.1.1)
                start,
                b'Content-Type: text/html; charset="utf-8"\r\n',
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
                html,
                b"\r\n",
                f"--{boundary}--\r\n".encode("ascii"),
            )
        )
