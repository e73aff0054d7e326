"""The URLs nurture puts in emails: confirmation, unsubscribe, preferences, articles, booking."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from nurture.config import Config
from nurture.tokens import (
    make_confirm_token,
    make_preferences_token,
    make_unsubscribe_token,
    preferences_token_signer,
    unsubscribe_token_signer,
)

# The unsubscribe link of a `newsletter test` copy: subscriber 0 (nobody) and this stream.
TEST_COPY_SUBSCRIBER = 0
TEST_COPY_STREAM = "newsletter:test"


def confirm_url(config: Config, subscriber_id: int, nonce: int, issued_at: datetime) -> str:
    token = make_confirm_token(config.secrets.require_secret_key(), subscriber_id, nonce, issued_at)
    return f"{config.web.public_base_url}/confirm/{token}"


def unsubscribe_url(config: Config, subscriber_id: int, stream: str) -> str:
    token = make_unsubscribe_token(config.secrets.require_secret_key(), subscriber_id, stream)
    return f"{config.web.public_base_url}/unsubscribe/{token}"


def unsubscribe_urls(config: Config, stream: str) -> Callable[[int], str]:
    """`unsubscribe_url` for one stream, by subscriber id, with the key and base URL looked
    up once: a pass makes one per email."""
    sign = unsubscribe_token_signer(config.secrets.require_secret_key())
    prefix = f"{config.web.public_base_url}/unsubscribe/"

    def url(subscriber_id: int) -> str:
        return prefix + sign(subscriber_id, stream)

    return url


def preferences_url(config: Config, subscriber_id: int) -> str:
    token = make_preferences_token(config.secrets.require_secret_key(), subscriber_id)
    return f"{config.web.public_base_url}/preferences/{token}"


def preferences_urls(config: Config) -> Callable[[int], str]:
    """`preferences_url` by subscriber id, with the key and base URL looked up once: a pass
    makes one per email."""
    sign = preferences_token_signer(config.secrets.require_secret_key())
    prefix = f"{config.web.public_base_url}/preferences/"

    def url(subscriber_id: int) -> str:
        return prefix + sign(subscriber_id)

    return url


def keep_url(preferences: str) -> str:
    """The re-permission email's "keep me on the list" link: a page of the preference center."""
    return f"{preferences}/keep"


def test_copy_preferences_url(config: Config) -> str:
    """A test copy's preference link: subscriber 0 (nobody); its page changes nothing."""
    return preferences_url(config, TEST_COPY_SUBSCRIBER)


def test_copy_unsubscribe_url(config: Config) -> str:
    return unsubscribe_url(config, TEST_COPY_SUBSCRIBER, TEST_COPY_STREAM)


def is_test_copy_subscriber(subscriber_id: int) -> bool:
    """Whether a preference-center token came from a test copy (its page must change nothing)."""
    return subscriber_id == TEST_COPY_SUBSCRIBER


def is_test_copy(subscriber_id: int, stream: str) -> bool:
    """Whether an unsubscribe token came from a test copy (its link must change nothing)."""
    return subscriber_id == TEST_COPY_SUBSCRIBER and stream == TEST_COPY_STREAM


def article_url(config: Config, slug: str) -> str:
    return f"{config.practice.website}/{slug.strip('/')}"


def signup_url(config: Config) -> str:
    return f"{config.web.public_base_url}/subscribe"
