"""DNS look-ups for the doctor: TXT, MX, CNAME and address records, with a deadline.

Every answer is one of: the records, "none" (the name or the type does not exist),
or "could not ask" (no answer within the time allowed, or no server would answer),
so that a check can say which. Nothing here raises for DNS trouble.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.name
import dns.resolver

from nurture.deliverability import DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Answer:
    records: tuple[str, ...] = ()
    error: str | None = None  # set when DNS could not be asked: the check cannot say

    @property
    def found(self) -> bool:
        return bool(self.records)


@dataclass
class Lookup:
    """A resolver: the system's, or given name servers (`host:port`, the tests' stand-in)."""

    nameservers: Sequence[str] = ()
    timeout: float = DEFAULT_TIMEOUT
    _resolver: dns.resolver.Resolver | None = field(default=None, init=False, repr=False)

    def resolver(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            if self.nameservers:
                resolver = dns.resolver.Resolver(configure=False)
                hosts, ports = [], set()
                for server in self.nameservers:
                    host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
                    hosts.append(host)
                    ports.add(int(port) if port else 53)
                resolver.nameservers = hosts
                resolver.port = ports.pop() if len(ports) == 1 else 53
            else:
                try:
                    resolver = dns.resolver.Resolver()
                except dns.resolver.NoResolverConfiguration:
                    resolver = dns.resolver.Resolver(configure=False)
                    resolver.nameservers = []
            resolver.lifetime = self.timeout
            resolver.timeout = min(self.timeout, 2.0)
            self._resolver = resolver
        return self._resolver

    def ask(self, name: str, rdtype: str) -> Answer:
        resolver = self.resolver()
        if not resolver.nameservers:
            return Answer(error="no DNS server is configured on this machine")
        try:
            answer = resolver.resolve(dns.name.from_text(name), rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Answer()
        except dns.resolver.LifetimeTimeout:
            return Answer(error=f"no DNS answer within {self.timeout:g} seconds")
        except dns.resolver.NoNameservers:
            return Answer(error="no DNS server would answer")
        except dns.exception.DNSException as exc:
            return Answer(error=f"DNS error: {type(exc).__name__}")
        if answer.rrset is None:
            return Answer()
        return Answer(tuple(_text(record, rdtype) for record in answer.rrset))

    def txt(self, name: str) -> Answer:
        return self.ask(name, "TXT")


def _text(record: object, rdtype: str) -> str:
    if rdtype == "TXT":
        strings = getattr(record, "strings", ())
        return b"".join(strings).decode("utf-8", "replace")
    if rdtype == "MX":
        return str(getattr(record, "exchange", "")).rstrip(".")
    if rdtype == "CNAME":
        return str(getattr(record, "target", "")).rstrip(".")
    return str(record)
