"""The URLs nurture puts in emails: confirmation, unsubscribe, articles, booking."""

from __future__ import annotations

from datetime import datetime

from nurture.config import Config
from nurture.tokens import make_confirm_token, make_unsubscribe_token


def confirm_url(config: Config, subscriber_id: int, nonce: int, issued_at: datetime) -> str:
    token = make_confirm_token(config.secrets.require_secret_key(), subscriber_id, nonce, issued_at)
    return f"{config.web.public_base_url}/confirm/{token}"


def unsubscribe_url(config: Config, subscriber_id: int, stream: str) -> str:
    token = make_unsubscribe_token(config.secrets.require_secret_key(), subscriber_id, stream)
    return f"{config.web.public_base_url}/unsubscribe/{token}"


def article_url(config: Config, slug: str) -> str:
    return f"{config.practice.website}/{slug.strip('/')}"


def signup_url(config: Config) -> str:
    return f"{config.web.public_base_url}/subscribe"
