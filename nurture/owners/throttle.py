"""Login throttling kept in the store, so every process and machine counts the same attempts.

Three limits, each over a sliding window:

- a network: after LIMIT failures from one network within WINDOW, every attempt from it
  is refused (right password or not) until the oldest ages out. A network is an IPv4
  address, or the /64 an IPv6 address belongs to (one subscriber line gets a whole /64),
  with an IPv4 address written as IPv6 (::ffff:192.0.2.1) counted as itself.
- an account, against strangers: after LIMIT failures for one address within WINDOW from
  networks that never signed in to it, attempts from such networks are refused. From a
  network where the owner has signed in before (within KNOWN_FOR), only the network's
  own limit applies: knowing her address is not enough to lock her out.
- the code app, against guessing: after CODE_LIMIT wrong codes typed with the right
  password within CODE_WINDOW, no code is taken for that account (a recovery code still
  is: 80 random bits cannot be guessed).

The address is kept only as a hash, whether or not an owner has it.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from nurture.addresses import normalize_email
from nurture.errors import InputError
from nurture.store import models as m

LIMIT = 10
WINDOW = timedelta(minutes=15)
CODE_LIMIT = 6
CODE_WINDOW = timedelta(hours=24)
KNOWN_FOR = timedelta(days=90)
KEEP = max(WINDOW, CODE_WINDOW)
IPV6_NETWORK = 64
UNKNOWN = "unknown"

_FAILED = (m.LoginOutcome.FAILED.value, m.LoginOutcome.WRONG_CODE.value)


def account_key(email: str) -> str:
    try:
        _, key = normalize_email(email)
    except InputError:
        key = email.strip().casefold()
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def network_of(ip: str | None) -> str:
    """The network an address counts as: itself for IPv4 (also when written as IPv6), its /64 for IPv6."""
    if not ip:
        return UNKNOWN
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return UNKNOWN
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((address, IPV6_NETWORK), strict=False))
    return str(address)


@dataclass(frozen=True)
class Throttle:
    network_locked: bool
    account_locked: bool  # for attempts from a network that never signed in to the account
    known_network: bool
    codes_locked: bool

    @property
    def refused(self) -> bool:
        return self.network_locked or (self.account_locked and not self.known_network)


def _known(account: str, now: datetime) -> Select[str]:
    return select(m.LoginAttempt.ip).where(
        m.LoginAttempt.account == account,
        m.LoginAttempt.outcome == m.LoginOutcome.SIGNED_IN.value,
        m.LoginAttempt.at > now - KNOWN_FOR,
    )


def throttle_state(session: Session, account: str, network: str, now: datetime) -> Throttle:
    since = now - WINDOW
    known = session.scalar(
        select(m.LoginAttempt.id)
        .where(
            m.LoginAttempt.account == account,
            m.LoginAttempt.ip == network,
            m.LoginAttempt.outcome == m.LoginOutcome.SIGNED_IN.value,
            m.LoginAttempt.at > now - KNOWN_FOR,
        )
        .limit(1)
    )
    failed = m.LoginAttempt.outcome.in_(_FAILED)
    recent = m.LoginAttempt.at > since
    counts = select(
        func.count().filter(and_(recent, failed, m.LoginAttempt.ip == network)),
        func.count().filter(
            and_(
                recent,
                failed,
                m.LoginAttempt.account == account,
                m.LoginAttempt.ip.not_in(_known(account, now)),
            )
        ),
        func.count().filter(
            and_(
                m.LoginAttempt.account == account,
                m.LoginAttempt.outcome == m.LoginOutcome.WRONG_CODE.value,
                m.LoginAttempt.at > now - CODE_WINDOW,
            )
        ),
    ).where(or_(m.LoginAttempt.account == account, m.LoginAttempt.ip == network))
    by_network, by_account, wrong_codes = session.execute(counts).one()
    return Throttle(
        network_locked=int(by_network or 0) >= LIMIT,
        account_locked=int(by_account or 0) >= LIMIT,
        known_network=known is not None,
        codes_locked=int(wrong_codes or 0) >= CODE_LIMIT,
    )


def record_attempt(
    session: Session, account: str, network: str, now: datetime, outcome: m.LoginOutcome
) -> None:
    session.add(m.LoginAttempt(at=now, account=account, ip=network[:45], outcome=outcome.value))
    # Failures are needed for a day; sign-ins name the networks she is known from.
    session.execute(
        delete(m.LoginAttempt).where(
            or_(
                and_(m.LoginAttempt.at < now - KEEP, m.LoginAttempt.outcome.in_(_FAILED)),
                m.LoginAttempt.at < now - KNOWN_FOR,
            )
        )
    )
