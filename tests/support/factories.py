"""Build real configs, apps and subscribers for tests, in a temporary project folder."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from nurture import links
from nurture.app import App
from nurture.config import Config, Settings, load_config
from nurture.content.prepared import Recipient
from tests.support import io_guard

REPO = Path(__file__).resolve().parents[2]
SECRET = "test-secret-key-0123456789"

# Apps opened by tests, closed after each test by the autouse fixture in conftest
# (an engine left open is a ResourceWarning, and warnings are errors here).
OPENED: list[App] = []


def open_app(config: Config) -> App:
    app = App.open(config)
    OPENED.append(app)
    return app


def close_opened() -> None:
    while OPENED:
        OPENED.pop().close()


def _set_dotted(data: dict[str, Any], overrides: dict[str, Any]) -> None:
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value


def write_project(
    tmp_path: Path, overrides: dict[str, Any] | None = None, *, copy_content: bool = True
) -> Path:
    """A project folder like the repo's: config.yaml (with dotted overrides), campaigns/, templates/."""
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    data["database"]["url"] = f"sqlite:///{tmp_path / 'nurture.db'}"
    data["delivery"]["outbox_dir"] = str(tmp_path / "outbox")
    _set_dotted(data, overrides or {})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    if copy_content:
        for folder in ("campaigns", "templates"):
            if not (tmp_path / folder).exists():
                shutil.copytree(REPO / folder, tmp_path / folder)
    return path


def make_config(tmp_path: Path, environ: dict[str, str] | None = None, **overrides: Any) -> Config:
    """`make_config(tmp_path, **{"delivery.transport": "outbox"})`."""
    path = write_project(tmp_path, overrides)
    env = {"NURTURE_SECRET_KEY": SECRET, **(environ or {})}
    return load_config(path, environ=env)


def make_app(
    tmp_path: Path,
    *,
    database_url: str | None = None,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> App:
    if database_url:
        overrides["database.url"] = database_url
    return open_app(make_config(tmp_path, environ=environ, **overrides))


MEMORY_DATABASE = "sqlite://"


def memory_config(environ: dict[str, str] | None = None, **overrides: Any) -> Config:
    """The repo's own config.yaml, campaigns/ and templates/, read in place and never written,
    with dotted overrides applied in memory and an in-memory SQLite database.url: the config
    of a unit test (`memory_config(**{"practice.unsubscribe_mailto": "u@example.com"})`).

    Only under the unit I/O guard: the folders are the repo's own, so a write would land there.
    """
    if io_guard.active() is None:
        raise RuntimeError(
            "memory_config() is for unit tests (tests/unit): "
            "only there does the I/O guard stop writes to the repo"
        )
    data = yaml.safe_load((REPO / "config.yaml").read_text(encoding="utf-8"))
    data["database"]["url"] = MEMORY_DATABASE
    _set_dotted(data, overrides)
    base = load_config(REPO / "config.yaml", environ={"NURTURE_SECRET_KEY": SECRET, **(environ or {})})
    return dataclasses.replace(base, settings=Settings.model_validate(data))


def recipient(
    config: Config, first_name: str | None = "Sam", subscriber_id: int = 7, stream: str = "kap-intro"
) -> Recipient:
    """A recipient of `stream` with real signed unsubscribe and preference links."""
    return Recipient(
        email="sam@example.com",
        first_name=first_name,
        unsubscribe_url=links.unsubscribe_url(config, subscriber_id, stream),
        preferences_url=links.preferences_url(config, subscriber_id),
    )


def at(text: str) -> datetime:
    """at("2026-12-01 09:30") -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def active_subscribers(
    app: App,
    count: int,
    now: datetime,
    *,
    timezone_name: str | None = "America/New_York",
    prefix: str = "person",
) -> list[int]:
    """Insert `count` confirmed subscribers enrolled in the confirmed-trigger campaigns, in bulk."""
    from nurture.series.enrollment import enroll
    from nurture.store import models as m
    from nurture.store.db import transaction

    with transaction(app.engine) as session:
        rows = session.execute(
            m.Subscriber.__table__.insert().returning(
                m.Subscriber.__table__.c.id, sort_by_parameter_order=True
            ),
            [
                {
                    "email": f"{prefix}{i}@example.com",
                    "email_key": f"{prefix}{i}@example.com",
                    "first_name": f"P{i}",
                    "timezone": timezone_name,
                    "status": m.SubscriberStatus.ACTIVE,
                    "source": "test",
                    "created_at": now,
                    "confirmed_at": now,
                    "status_changed_at": now,
                    "confirm_nonce": 0,
                }
                for i in range(count)
            ],
        ).all()
        ids = [row[0] for row in rows]
        session.execute(
            m.ConsentEvent.__table__.insert(),
            [
                {
                    "subscriber_id": i,
                    "kind": m.ConsentKind.IMPORT,
                    "occurred_at": now,
                    "recorded_at": now,
                    "source": "test fixture",
                }
                for i in ids
            ],
        )
        enroll(session, app, ids, now)
    return ids


def signed_paths(app: App, count: int, now: datetime, *, source: str) -> tuple[list[str], list[str]]:
    """Real signed link paths for a live site: the /confirm/ paths of `count` new pending
    subscribers, and the /unsubscribe/ paths (series kap-intro) of `count` active ones."""
    from nurture import tokens
    from nurture.audience.signup import subscribe

    confirm = []
    for n in range(count):
        subscriber_id = subscribe(app, f"pending{n}@example.com", now, source=source).subscriber_id
        confirm.append(f"/confirm/{tokens.make_confirm_token(SECRET, subscriber_id, 1, now)}")
    unsubscribe = [
        f"/unsubscribe/{tokens.make_unsubscribe_token(SECRET, i, 'kap-intro')}"
        for i in active_subscribers(app, count, now)
    ]
    return confirm, unsubscribe


def consent_events(app: App, subscriber_id: int) -> list[Any]:
    """A subscriber's consent events, oldest first."""
    from sqlalchemy import select

    from nurture.store import models as m
    from nurture.store.db import transaction

    with transaction(app.engine) as session:
        return list(
            session.scalars(
                select(m.ConsentEvent)
                .where(m.ConsentEvent.subscriber_id == subscriber_id)
                .order_by(m.ConsentEvent.id)
            )
        )


def enrollments_of(app: App, subscriber_id: int) -> list[Any]:
    from sqlalchemy import select

    from nurture.store import models as m
    from nurture.store.db import transaction

    with transaction(app.engine) as session:
        return list(session.scalars(select(m.Enrollment).where(m.Enrollment.subscriber_id == subscriber_id)))
