"""config.yaml, validated by pydantic, with environment overrides; secrets from the environment only.

`load_config` reads and validates (nurture.config.loading); the sections and their rules are
in nurture.config.sections, single-value checks in nurture.config.values, the secrets and the
names of their variables in nurture.config.secrets. Callers import from here.
"""

from nurture.config.loading import Config, load_config
from nurture.config.secrets import (
    BOOKING_SECRET_ENV,
    IMAP_PASSWORD_ENV,
    PREVIOUS_SECRETS_ENV,
    SECRET_ENV,
    SENDGRID_HOST_ENV,
    SENDGRID_KEY_ENV,
    SMTP_PASSWORD_ENV,
    WEBHOOK_KEY_ENV,
    Secrets,
)
from nurture.config.sections import (
    Bounces,
    Consent,
    Console,
    Database,
    Deliverability,
    Delivery,
    Practice,
    Retention,
    Sender,
    SendWindow,
    Ses,
    Settings,
    Smtp,
    Sunset,
    Web,
)

__all__ = [
    "BOOKING_SECRET_ENV",
    "IMAP_PASSWORD_ENV",
    "SMTP_PASSWORD_ENV",
    "PREVIOUS_SECRETS_ENV",
    "SECRET_ENV",
    "SENDGRID_HOST_ENV",
    "SENDGRID_KEY_ENV",
    "WEBHOOK_KEY_ENV",
    "Config",
    "Consent",
    "Console",
    "Database",
    "Deliverability",
    "Delivery",
    "Practice",
    "Retention",
    "Ses",
    "Smtp",
    "SendWindow",
    "Sender",
    "Secrets",
    "Settings",
    "Sunset",
    "Bounces",
    "Web",
    "load_config",
]
