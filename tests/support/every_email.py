"""Every email the project sends, rendered for one recipient as a complete MIME message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from nurture import links
from nurture.config import Config
from nurture.content.campaigns import load_campaigns, load_email, newsletter_files
from nurture.content.prepared import Recipient
from nurture.content.rendering import Renderer
from nurture.providers.outbox import build_message


@dataclass(frozen=True)
class Message:
    name: str  # "kap-intro/03-is-kap-safe", "newsletters/2026-12-winter-note", "confirmation"
    data: bytes


def every_email(config: Config) -> list[Message]:
    """Series steps, newsletters under campaigns/newsletters and the confirmation."""
    renderer = Renderer(config)
    prepared = [
        renderer.prepare_step(campaign, step)
        for campaign in load_campaigns(config.campaigns_dir).values()
        for step in campaign.steps
    ]
    prepared += [
        renderer.prepare_newsletter(load_email(path), f"newsletters/{path.stem}")
        for path in newsletter_files(config.campaigns_dir)
    ]
    prepared.append(renderer.prepare_confirmation())
    recipient = Recipient(
        email="sam.rivera@example.com",
        first_name="Sam",
        unsubscribe_url=links.unsubscribe_url(config, 7, "kap-intro"),
        preferences_url=links.preferences_url(config, 7),
        confirm_url=links.confirm_url(config, 7, 1, datetime(2026, 11, 26, 14, 0, tzinfo=UTC)),
    )
    messages = []
    for email in prepared:
        envelope = email.envelope("42", recipient, {"delivery_id": "42"})
        messages.append(Message(email.name, build_message(email.batch([envelope]), envelope).as_bytes()))
    return messages
