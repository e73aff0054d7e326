"""Finding people for the owner console: by address or name, status and tag."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from nurture.addresses import clean_tag
from nurture.app import App
from nurture.errors import InputError, NotFound
from nurture.store import models as m
from nurture.store.db import reading

LIMIT = 100


@dataclass(frozen=True)
class Found:
    id: int
    email: str
    first_name: str | None
    status: str
    created_at: datetime
    tags: tuple[str, ...]


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(app: App, q: str = "", *, status: str = "", tag: str = "", limit: int = LIMIT) -> list[Found]:
    """Newest first. `q` matches part of the address or the first name, ignoring case."""
    query = select(m.Subscriber).order_by(m.Subscriber.id.desc()).limit(limit)
    text = q.strip()
    if text:
        pattern = _like(text.casefold())
        query = query.where(
            or_(
                m.Subscriber.email_key.like(pattern, escape="\\"),
                func.lower(m.Subscriber.first_name).like(pattern, escape="\\"),
            )
        )
    if status:
        if status not in m.SUBSCRIBER_STATUSES:
            raise InputError(f"status {status!r}: use one of {', '.join(m.SUBSCRIBER_STATUSES)}")
        query = query.where(m.Subscriber.status == status)
    if tag:
        query = query.join(m.SubscriberTag).where(m.SubscriberTag.tag == clean_tag(tag))
    with reading(app.engine) as session:
        people = session.scalars(query).all()
        ids = [person.id for person in people]
        tags: dict[int, list[str]] = {}
        if ids:
            for subscriber_id, name in session.execute(
                select(m.SubscriberTag.subscriber_id, m.SubscriberTag.tag).where(
                    m.SubscriberTag.subscriber_id.in_(ids)
                )
            ):
                tags.setdefault(subscriber_id, []).append(name)
        return [
            Found(p.id, p.email, p.first_name, p.status, p.created_at, tuple(sorted(tags.get(p.id, []))))
            for p in people
        ]


def all_tags(app: App) -> list[str]:
    with reading(app.engine) as session:
        return list(session.scalars(select(m.SubscriberTag.tag).distinct().order_by(m.SubscriberTag.tag)))


def email_of(app: App, subscriber_id: int) -> str:
    with reading(app.engine) as session:
        email = session.scalar(select(m.Subscriber.email).where(m.Subscriber.id == subscriber_id))
    if email is None:
        raise NotFound(f"subscriber {subscriber_id} is not here (perhaps forgotten)")
    return email
