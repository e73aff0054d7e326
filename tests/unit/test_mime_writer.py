"""The outbox's fast writer (nurture.providers.mime_writer) writes the same message as the
reference built with the email package (outbox.build_message): every header and both bodies
parse to the same values, lines stay within 76 characters, line ends are CRLF."""

from __future__ import annotations

import random
from collections.abc import Sequence
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from hypothesis import example, given
from hypothesis import strategies as st

from nurture.providers.base import Batch, Envelope, Sender, apply_substitutions
from nurture.providers.mime_writer import BatchWriter, _Body, _has_line_break, _qp, _TaggedLine
from nurture.providers.outbox import build_message
from tests.support.factories import at

HEADERS = (
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
MESSAGE_ID = "<171.42.99@example.com>"

names = st.one_of(
    st.none(),
    st.sampled_from(
        ["Sam", "Dr. Amy O'Neil", 'Jo "JJ" Smith', "Zoë Ødegaard", "Lee, Pat", "  spaced  ", "李"]
    ),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
)
subjects = st.one_of(
    st.sampled_from(["What a dosing session is like", "Ketamine & you: safety first — part 2"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=150),
)
bodies = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=600)


def parsed(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def both(batch: Batch, envelope: Envelope) -> tuple[bytes, bytes]:
    reference = build_message(batch, envelope, message_id=MESSAGE_ID).as_bytes()
    fast = BatchWriter(batch).message(envelope, MESSAGE_ID)
    return reference, fast


def assert_same(reference: bytes, fast: bytes) -> None:
    want, got = parsed(reference), parsed(fast)
    for name in HEADERS:
        assert str(got[name]) == str(want[name]), name
    want_parts = [part for part in want.walk() if not part.is_multipart()]
    got_parts = [part for part in got.walk() if not part.is_multipart()]
    assert [p.get_content_type() for p in got_parts] == ["text/plain", "text/html"]
    for want_part, got_part in zip(want_parts, got_parts, strict=True):
        assert got_part.get_content() == want_part.get_content()
        assert got_part["Content-Transfer-Encoding"] == "quoted-printable"
    assert b"\n" not in fast.replace(b"\r\n", b"")
    body = fast.split(b"\r\n\r\n", 1)[1]
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))


@given(name=names, subject=subjects, text=bodies, html=bodies, first=st.text(max_size=30))
def test_the_fast_writer_writes_what_the_email_package_writes(
    name: str | None, subject: str, text: str, html: str, first: str
) -> None:
    unsubscribe = "https://practice.example/unsubscribe/" + "t" * 90
    envelope = Envelope(
        "42",
        "reader@bücher.example",
        name,
        subject,
        headers={
            "List-Unsubscribe": f"<{unsubscribe}>, <mailto:unsubscribe@practice.example>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        substitutions={"-first-": first},
    )
    batch = Batch(
        Sender("hello@practice.example", "Riverside Practice", reply_to="care@practice.example"),
        text + "\nHi -first-",
        "<p>" + html + "</p><p>-first-</p>",
        (envelope,),
        sent_at=at("2026-12-01 15:00"),
    )
    assert_same(*both(batch, envelope))


def test_a_long_list_header_is_folded_one_url_a_line_and_a_line_break_refused() -> None:
    long_url = "https://practice.example/unsubscribe/" + "x" * 120
    envelope = Envelope(
        "7",
        "sam@example.com",
        "Sam",
        "Hi",
        headers={"List-Unsubscribe": f"<{long_url}>, <mailto:u@x.example>"},
    )
    batch = Batch(
        Sender("a@x.example", "A"), "text", "<p>html</p>", (envelope,), sent_at=at("2026-12-01 15:00")
    )
    reference, fast = both(batch, envelope)
    assert_same(reference, fast)
    assert f"List-Unsubscribe: <{long_url}>,\r\n <mailto:u@x.example>\r\n".encode() in fast

    bad = envelope._replace(headers={"List-Unsubscribe": "<https://x.example/u>\r\nBcc: a@b.example"})
    try:
        BatchWriter(batch).message(bad, MESSAGE_ID)
    except ValueError as exc:
        assert "line break" in str(exc)
    else:
        raise AssertionError("a header with CR/LF was written")


# Bodies built from pieces that stress quoted-printable line by line: every kind of line
# end, trailing white space, a lone dot, "=", non-ASCII, lines long enough to soft-break.
pieces = st.sampled_from(
    ["\n", "\r\n", "\r", " ", "\t", ".", "=", "é", "李", "x" * 70, "a b ", "-tag-", "-other-"]
)
templates = st.lists(st.one_of(pieces, st.text(max_size=8)), max_size=30).map("".join)
values = st.one_of(st.sampled_from(["", " ", ".", "\n", "\r\n", "-other-", "y" * 80]), st.text(max_size=12))


@given(template=templates, tag=values, other=values)
@example(template="Hi\n-tag-", tag="", other="")  # an empty last line after others adds nothing
@example(template="-tag-", tag="", other="")  # an empty text is one empty line
@example(template="a\r-tag-\nb", tag="", other="")  # a lone CR meets an LF: one line end
@example(template="a -tag-\n.\n-other-", tag=" ", other=".")  # trailing space, lone dots
@example(template="a-tag-b\nc -other-", tag="\n", other="\r")  # values with line ends
def test_a_body_encoded_line_by_line_is_byte_for_byte_the_whole_text_encoded(
    template: str, tag: str, other: str
) -> None:
    """The lines without a tag are encoded once per batch: the result must be the bytes
    the whole substituted text encodes to, whatever the line ends, values and lines."""
    substitutions = {"-tag-": tag, "-other-": other}
    want = _qp(apply_substitutions(template, substitutions))
    body = _Body(template, tuple(substitutions))
    if body.usable and not _has_line_break((tag, other)):
        assert body.encode(substitutions) == want
    envelope = Envelope("42", "reader@example.com", "Sam", "Hi", substitutions=substitutions)
    batch = Batch(
        Sender("hello@practice.example", "Riverside Practice"),
        template,
        "<p>" + template + "</p>",
        (envelope,),
        sent_at=at("2026-12-01 15:00"),
    )
    message = BatchWriter(batch).message(envelope, MESSAGE_ID)
    html = _qp(apply_substitutions("<p>" + template + "</p>", substitutions))
    assert b"quoted-printable\r\n\r\n" + want + b"\r\n--" in message
    assert b"quoted-printable\r\n\r\n" + html + b"\r\n--" in message


# A tagged line is encoded per email from the head's last safe soft break to the end of its
# last tag (`_TaggedLine`); the rest comes from encodings made once. Random long lines, with
# the characters quoted-printable treats specially, checked against the whole text encoded.
TAGS = ("-a-", "-first_name_html-", "-b-", "-a-b-")
CHARACTERS = (
    "abcdefghijklmnopqrstuvwxyz" * 2 + "ABC0123456789<>/\"'" + "  \t\t..==-_" + "é李😀" + "\0\x01\x7f"
)
SPECIAL_VALUES = (" ", "\t", ".", "=", "é", "😀", "a b ", ". ", "\0", "-", "a-", "first_name_html-", "-b")


def random_text(rng: random.Random, size: int) -> str:
    return "".join(rng.choices(CHARACTERS, k=size))


def random_line(rng: random.Random) -> str:
    parts = [random_text(rng, rng.randrange(60, 1000))] if rng.random() < 0.5 else []  # a long head
    for _ in range(rng.randrange(1, 7)):
        kind = rng.random()
        if kind < 0.4:
            parts.append(rng.choice(TAGS))
        elif kind < 0.5:
            parts.append(rng.choice(("-", "a-", "-a")))  # next to a tag: one may straddle the edge
        elif kind < 0.75:
            parts.append(random_text(rng, rng.randrange(0, 12)))
        else:
            parts.append(random_text(rng, rng.randrange(60, 1000)))
    return "".join(parts)


def random_value(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.15:
        return ""
    if kind < 0.35:
        return rng.choice(SPECIAL_VALUES)
    if kind < 0.6:
        return rng.choice("y=é") * rng.randrange(0, 160)  # moves the column the tail starts at
    return random_text(rng, rng.randrange(0, 120))


def test_tagged_lines_encoded_in_pieces_are_byte_for_byte_the_whole_text_encoded() -> None:
    rng = random.Random(25)
    heads = tails = emails = middles = wholes = 0
    for _ in range(1500):
        lines = [random_line(rng) if rng.random() < 0.7 else random_text(rng, 40) for _ in range(4)]
        template = "\n".join(lines[: rng.randrange(1, 5)]) + rng.choice(("", "\n"))
        body = _Body(template, TAGS)
        assert body.usable
        tagged = [chunk for chunk in body._chunks if isinstance(chunk, _TaggedLine)]
        heads += sum(1 for line in tagged if line._cut)
        tails += sum(1 for line in tagged if line._tail)
        middles += sum(1 for line in tagged if line._middle is not None)
        wholes += sum(1 for line in tagged if line._middle is None)
        for _ in range(8):  # one _Body for many emails: the tail's encodings are cached by column
            substitutions = {tag: random_value(rng) for tag in TAGS}
            assert body.encode(substitutions) == _qp(apply_substitutions(template, substitutions)), (
                template,
                substitutions,
            )
            emails += 1
    assert emails == 12_000 and heads > 800 and tails > 500  # both caches are used, often
    # Both ways of substituting: the middle alone, and the whole line where a tag could straddle.
    assert middles > 1000 and wholes > 100


def assert_tagged_line(template: str, values: Sequence[str]) -> None:
    line = _TaggedLine(template, TAGS)
    for value in values:
        substitutions = {"-a-": value, "-first_name_html-": "N", "-b-": value[:3]}
        substituted = apply_substitutions(template, substitutions)
        assert line.encode(substituted) == _qp(substituted), (template, value)
        want = _qp(substituted) if substituted else None
        assert line.encode_with(substitutions) == want, (template, value)


def test_tagged_lines_around_every_soft_break_position() -> None:
    """Heads of every length up to a few lines, so that each kind of byte meets the head's
    soft break, and tails met at every column 0..75."""
    pattern = "ab=c. d\0e\t.fé=" * 20
    few = ["", ".", " ", "=", "é", "\0", "y" * 7, "html-", "x-b"]
    for size in range(200):
        for head in (pattern[:size], "q" * size + ".\0", "é" * size + "=", "q" * size + "-first_name_"):
            for template in (head + "-a-=t. x\t", head + "-a-.\0-b-.", head + "-a--b-"):
                # "html-" completes -first_name_html- in the head; "x-b" then "-" a -b- in the tail.
                assert_tagged_line(template, few)
    columns = ["y" * size for size in range(80)] + ["=" * size for size in range(30)] + few
    for size in (0, 1, 2, 3, 74, 75, 76, 77, 150, 151):
        for tail in (
            pattern[:size],
            "\0" + pattern[:size],
            ".",
            ".\0" + pattern[:size],
            "-" + pattern[:size],
        ):
            for head in ("", ".z=" * 30, "é" * 40):
                assert_tagged_line(head + "-a-" + tail, columns)
