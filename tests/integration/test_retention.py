"""The retention pass: old provider events are deleted while every number the results
pages show stays the same; what is still evidence (events of a claimed delivery, opens
and clicks tied to no one) stays; old deliveries keep their row but not the provider's ids."""

from __future__ import annotations

from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from nurture.app import App
from nurture.cli.main import cli
from nurture.reporting.stats import step_stats
from nurture.retention import apply_retention
from nurture.store import models as m
from nurture.store.db import transaction
from tests.support.factories import at
from tests.support.stats_dataset import build_dataset


@pytest.fixture
def database_url(both_stores: str) -> str:
    return both_stores


@pytest.fixture
def app_settings() -> dict[str, object]:
    return {"delivery.tracking": "per_person"}


def event_count(app: App) -> int:
    with transaction(app.engine) as session:
        return int(session.scalar(select(func.count()).select_from(m.ProviderEvent)) or 0)


def test_old_events_go_and_the_results_stay_the_same(app: App) -> None:
    build_dataset(app)
    before = [(row.label, row.counts) for row in step_stats(app)]
    stored = event_count(app)
    with transaction(app.engine) as session:
        claimed = session.scalar(
            select(func.count())
            .select_from(m.ProviderEvent)
            .join(m.Delivery, m.Delivery.id == m.ProviderEvent.delivery_id)
            .where(m.Delivery.status == m.DeliveryStatus.CLAIMED)
        )
        untied_reading = session.scalar(
            select(func.count())
            .select_from(m.ProviderEvent)
            .where(
                m.ProviderEvent.delivery_id.is_(None),
                m.ProviderEvent.kind.in_([m.EventKind.OPENED, m.EventKind.CLICKED]),
            )
        )
    assert claimed, "the data set has an event of a claimed delivery"
    kept = claimed + untied_reading

    # 89 days on: nothing is old enough yet.
    assert apply_retention(app, at("2026-12-06 12:00") + timedelta(days=89)).events_deleted == 0
    report = apply_retention(app, at("2027-12-31 12:00"))
    assert report.events_deleted == stored - kept
    assert event_count(app) == kept, "the claimed delivery's evidence and the per-email totals stay"
    assert [(row.label, row.counts) for row in step_stats(app)] == before, "every number stays"
    # Twice is the same as once.
    assert apply_retention(app, at("2027-12-31 12:00")).events_deleted == 0
    assert [(row.label, row.counts) for row in step_stats(app)] == before

    # 400 days on, deliveries keep their rows (the at-most-once guarantee) but not the provider's ids.
    with transaction(app.engine) as session:
        rows = session.scalar(select(func.count()).select_from(m.Delivery))
    apply_retention(app, at("2028-02-01 12:00"))
    with transaction(app.engine) as session:
        assert session.scalar(select(func.count()).select_from(m.Delivery)) == rows
        assert not session.scalar(
            select(func.count())
            .select_from(m.Delivery)
            .where(m.Delivery.status != m.DeliveryStatus.CLAIMED, m.Delivery.provider_message_id.is_not(None))
        )
    assert [(row.label, row.counts) for row in step_stats(app)] == before


def test_retention_apply_command(app: App) -> None:
    build_dataset(app)
    result = CliRunner().invoke(
        cli,
        ["--config", str(app.config.path), "retention", "apply", "--now", "2027-12-31T12:00:00Z"],
        env={"NURTURE_SECRET_KEY": "x" * 32},
    )
    assert result.exit_code == 0, result.output
    assert "provider events deleted" in result.output
