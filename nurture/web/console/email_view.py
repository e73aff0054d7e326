"""Email previews in the console: each email sits in a sandboxed <iframe srcdoc>, which
inherits the page's CSP. Email HTML is styled inline (style attributes and <style>
blocks); rather than allow 'unsafe-inline', the page's CSP lists the hash of each
style the framed emails contain ('unsafe-hashes' admits style attributes by hash
only). No script runs: the frames are sandboxed and the CSP has no script-src.
"""

from __future__ import annotations

import base64
import hashlib
from html.parser import HTMLParser


class _Styles(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: set[str] = set()
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "style" and value is not None:
                self.found.add(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found.add(data)


def _digest(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def style_hashes(*documents: str) -> list[str]:
    """CSP sources for every style in these email documents, for the page that frames them."""
    found: set[str] = set()
    for html in documents:
        parser = _Styles()
        parser.feed(html)
        parser.close()
        found |= parser.found
    return sorted(_digest(style) for style in found)
