"""Secrets: read from the environment only, never from config.yaml; the variables' names."""

from __future__ import annotations

from dataclasses import dataclass

from nurture.errors import ConfigError

ENV_PREFIX = "NURTURE_"
SECRET_ENV = "NURTURE_SECRET_KEY"
SENDGRID_KEY_ENV = "SENDGRID_API_KEY"
SENDGRID_HOST_ENV = "NURTURE_SENDGRID_HOST"
WEBHOOK_KEY_ENV = "NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY"
BOOKING_SECRET_ENV = "NURTURE_BOOKING_WEBHOOK_SECRET"
PREVIOUS_SECRETS_ENV = "NURTURE_PREVIOUS_SECRET_KEYS"
SMTP_PASSWORD_ENV = "NURTURE_SMTP_PASSWORD"
IMAP_PASSWORD_ENV = "NURTURE_BOUNCES_IMAP_PASSWORD"
# Variables that look like overrides but are not config keys.
NOT_OVERRIDES = {
    SECRET_ENV,
    SENDGRID_HOST_ENV,
    WEBHOOK_KEY_ENV,
    BOOKING_SECRET_ENV,
    PREVIOUS_SECRETS_ENV,
    SMTP_PASSWORD_ENV,
    IMAP_PASSWORD_ENV,
    "NURTURE_CONFIG",
    "NURTURE_DATABASE_URL",
}


@dataclass(frozen=True)
class Secrets:
    secret_key: str | None
    sendgrid_api_key: str | None
    sendgrid_host: str
    webhook_public_key: str | None
    booking_webhook_secret: str | None = None
    # Keys used before the current one: links they signed still verify
    # (docs/deploy.md, rotating the secret key).
    previous_secret_keys: tuple[str, ...] = ()
    smtp_password: str | None = None
    bounces_imap_password: str | None = None

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise ConfigError(
                f"{SECRET_ENV} is not set: it signs confirmation and unsubscribe links. "
                "Generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))' "
                "and keep it the same for as long as old emails are in inboxes."
            )
        if len(self.secret_key) < 16:
            raise ConfigError(f"{SECRET_ENV} is too short: use at least 16 random characters.")
        return self.secret_key

    def verification_keys(self) -> tuple[str, ...]:
        """The current key first, then the previous ones: every key a link may have been signed with."""
        return (self.require_secret_key(), *self.previous_secret_keys)

    def store_keys(self) -> tuple[str, ...]:
        """The keys that seal secrets kept in the store (nurture.at_rest), current first;
        empty when NURTURE_SECRET_KEY is not set (only a store holding such secrets needs one)."""
        return (self.secret_key, *self.previous_secret_keys) if self.secret_key else ()

    def require_sendgrid_key(self) -> str:
        if not self.sendgrid_api_key:
            raise ConfigError(
                f"delivery.transport is 'sendgrid' but {SENDGRID_KEY_ENV} is not set: "
                "create an API key limited to Mail Send in SendGrid and export it."
            )
        return self.sendgrid_api_key
