"""Every error nurture raises on purpose lives here.

User mistakes (bad config, bad CSV row, bad token) are `NurtureError`s: the CLI
prints their message and exits with `exit_code`, never a traceback.
Configuration errors are kept apart so that no broad handler swallows them.
Provider errors carry the provider's own reply so the owner can act on it.
"""

from __future__ import annotations


class NurtureError(Exception):
    """An error meant for a person: the message says what is wrong and what to do."""

    exit_code = 1


class ConfigError(NurtureError):
    """config.yaml or the environment is wrong: names the file, the key and the problem."""

    exit_code = 2


class InputError(NurtureError):
    """A command's input is wrong: an address, a CSV row, a date, a file."""


class TokenError(InputError):
    """A confirmation or unsubscribe token is malformed, tampered with or expired."""


class NotFound(InputError):
    """The thing named on the command line is not in the store."""


class ContentError(NurtureError):
    """A campaign, step or template cannot be loaded or rendered."""


class TransportError(NurtureError):
    """A provider refused or failed a request. Carries the provider's reply."""

    def __init__(self, message: str, *, status: int | None = None, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class FatalTransportError(TransportError):
    """The provider will refuse every request (bad API key, forbidden): stop the run now."""

    exit_code = 3


class WebhookRejected(Exception):
    """A provider's webhook request is refused as a whole (unsigned, stale, not JSON).

    Not a NurtureError: it becomes an HTTP answer, not a message for the owner.
    `status` is the HTTP status to answer with; `reason` is for the log and holds no
    secrets and no addresses.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class MalformedEvent(ValueError):
    """One event in a webhook batch cannot be used; the rest of the batch still is."""
