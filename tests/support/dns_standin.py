"""A DNS server on 127.0.0.1 (UDP) that answers from a small zone: the doctor's tests resolve
through it with the real resolver code, the way they would through any name server.

`DnsStandIn({"example.com": [("TXT", '"v=spf1 include:sendgrid.net ~all"')], ...})`:
names map to (type, text) records in zone-file syntax. A CNAME is followed for other
types, as a recursive resolver does; an unknown name is NXDOMAIN; a known name
without the type asked gets an empty answer. `silent=True` answers nothing at all
(a resolver that times out). `queries` records each (name, type) asked.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Zone = Mapping[str, Sequence[tuple[str, str]]]


class DnsStandIn:
    def __init__(self, zone: Zone, *, silent: bool = False) -> None:
        self.zone = {name.lower().rstrip("."): list(records) for name, records in zone.items()}
        self.silent = silent
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-standin", daemon=True)

    def __enter__(self) -> DnsStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            try:
                query = dns.message.from_wire(wire)
            except Exception:  # noqa: BLE001 - a stand-in ignores what it cannot read
                continue
            question = query.question[0]
            self.queries.append(
                (str(question.name).rstrip(".").lower(), dns.rdatatype.to_text(question.rdtype))
            )
            if self.silent:
                continue
            self.sock.sendto(self._answer(query).to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        wanted = dns.rdatatype.to_text(question.rdtype)
        name = str(question.name).rstrip(".").lower()
        for _ in range(8):  # follow CNAMEs, as a recursive resolver does
            records = self.zone.get(name)
            if records is None:
                if not response.answer:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            cname = [text for kind, text in records if kind == "CNAME"]
            if cname and wanted != "CNAME":
                response.answer.append(dns.rrset.from_text(name + ".", 300, "IN", "CNAME", cname[0]))
                name = cname[0].rstrip(".").lower()
                continue
            matching = [text for kind, text in records if kind == wanted]
            if matching:
                response.answer.append(
                    dns.rrset.from_text_list(name + ".", 300, dns.rdataclass.IN, wanted, matching)
                )
            return response
        return response


@contextmanager
def dns_standin(zone: Zone, *, silent: bool = False) -> Iterator[DnsStandIn]:
    with DnsStandIn(zone, silent=silent) as server:
        yield server
