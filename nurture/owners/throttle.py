"""Login throttling kept in the store, so every process and machine counts the same attempts.

After LIMIT failures for one address, or from one IP, within WINDOW, every further
attempt is refused (even a right password) until the oldest of them ages out.
The address is kept only as a hash, whether or not an owner has it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from nurture.addresses import normalize_email
from nurture.errors import InputError
from nurture.store import models as m

LIMIT = 10
WINDOW = timedelta(minutes=15)
KEEP = timedelta(days=1)


def account_key(email: str) -> str:
    try:
        _, key = normalize_email(email)
    except InputError:
        key = email.strip().casefold()
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_throttled(session: Session, account: str, ip: str, now: datetime) -> bool:
    since = now - WINDOW
    failures = (
        select(
            func.count().filter(m.LoginAttempt.account == account),
            func.count().filter(m.LoginAttempt.ip == ip),
        )
        .where(m.LoginAttempt.at > since, m.LoginAttempt.succeeded.is_(False))
        .where(or_(m.LoginAttempt.account == account, m.LoginAttempt.ip == ip))
    )
    by_account, by_ip = session.execute(failures).one()
    return int(by_account or 0) >= LIMIT or int(by_ip or 0) >= LIMIT


def record_attempt(session: Session, account: str, ip: str, now: datetime, *, succeeded: bool) -> None:
    session.add(m.LoginAttempt(at=now, account=account, ip=ip[:45], succeeded=succeeded))
    session.execute(delete(m.LoginAttempt).where(m.LoginAttempt.at < now - KEEP))
