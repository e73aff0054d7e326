"""Short lines for compiled HTML.

MJML writes a whole email's markup on a few lines of several thousand characters.
SMTP allows 998 characters a line (RFC 5322), and spam filters count a line that
long against a message (SpamAssassin's __LONGLINE feeds LONGLN_LOW_CONTRAST and
others), so the HTML is re-broken before it is sent or encoded.

Lines are broken only where a newline means exactly what the space it replaces
meant: between two attributes of a tag (outside quotes; never before the first, so
`<a href="..."` stays whole on one line), never inside a comment or
declaration (Outlook's `<!--[if mso | IE]>` included). Text content is never
touched, so a sentence in the HTML stays searchable as written and whitespace
between inline elements does not change.
"""

from __future__ import annotations

WRAP_AT = 100  # break at the first safe space once a line is this long


def wrap_html_lines(html: str, width: int = WRAP_AT) -> str:
    """`html` with a space between two attributes turned into a newline once a line reaches `width`."""
    out: list[str] = []
    line_length = 0
    in_tag = False
    breakable = False  # inside an element tag, not a <!-- comment --> or <!DOCTYPE>
    quote = ""
    valued = False  # the current tag's first attribute value has begun: later spaces may break
    for index, ch in enumerate(html):
        if ch == "\n":
            line_length = 0
            out.append(ch)
            continue
        if in_tag:
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch == ">":
                in_tag = False
            elif ch == "=":
                valued = True
            elif ch == " " and breakable and valued and line_length >= width:
                out.append("\n")
                line_length = 0
                continue
        elif ch == "<":
            in_tag = True
            valued = False
            breakable = html[index + 1 : index + 2] != "!"
        out.append(ch)
        line_length += 1
    return "".join(out)
