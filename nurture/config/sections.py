"""The sections of config.yaml as pydantic models: every key, its default and its rule."""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from nurture.config.values import (
    check_address,
    check_duration,
    check_url,
    check_zone,
    clock_time,
    control_character,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Keys whose text may span lines; every other text goes into one line of a page or a header.
    _multiline: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            allowed = "\n\t" if info.field_name in cls._multiline else ""
            bad = control_character(value, allowed)
            if bad is not None:
                raise ValueError(
                    f"holds the control character U+{ord(bad):04X}: "
                    "remove it (retype the value if you pasted it)"
                )
        return value


class Practice(Section):
    _multiline: ClassVar[frozenset[str]] = frozenset({"postal_address"})

    name: str = Field(min_length=1)
    postal_address: str = Field(min_length=5)
    website: str
    booking_url: str
    reply_to: str | None = None
    unsubscribe_mailto: str | None = None
    # Who gets the weekly summary and the alerts (`nurture summary`); never a subscriber list.
    owner_email: str | None = None

    @field_validator("website", "booking_url")
    @classmethod
    def _https(cls, value: str) -> str:
        return check_url(value, https_only=True)

    @field_validator("reply_to", "unsubscribe_mailto", "owner_email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else check_address(value)


class Sender(Section):
    from_email: str
    from_name: str = Field(min_length=1)

    @field_validator("from_email")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)


class SendWindow(Section):
    start: time = time(9, 0)
    end: time = time(17, 0)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time_of_day(cls, value: object) -> time:
        return clock_time(value)

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%H:%M}) must be later than start ({self.start:%H:%M})")
        return self


class Delivery(Section):
    transport: Literal["outbox", "sendgrid", "ses", "smtp"] = "outbox"
    outbox_dir: Path = Path("outbox")
    batch_size: int = Field(default=500, ge=1, le=1000)
    concurrency: int = Field(default=4, ge=1, le=32)
    request_timeout: float = Field(default=30.0, gt=0, le=300)
    send_window: SendWindow = SendWindow()
    weekdays_only: bool = False
    default_timezone: str = "America/New_York"
    max_emails_per_day: int = Field(default=1, ge=1, le=10)
    sandbox_mode: bool = False
    # off: SendGrid tracks no open or click; aggregate: it does, and only per-email totals
    # are kept; per_person: each open and click is stored against its delivery (docs/privacy.md).
    tracking: Literal["off", "aggregate", "per_person"] = "off"
    # The least a claim with an unknown outcome waits before it may be released: never
    # handed over, after this; silent, after this or the provider's event retry window,
    # whichever is longer, and only with evidence (nurture.sending.deliveries).
    reconcile_after: timedelta = Field(
        default=timedelta(hours=6), ge=timedelta(minutes=15), le=timedelta(days=7)
    )

    @field_validator("default_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("tracking", mode="before")
    @classmethod
    def _unquoted_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false.
        return "off" if value is False else value

    @field_validator("reconcile_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return check_duration(value)


class Database(Section):
    url: str = "sqlite:///nurture.db"


class Web(Section):
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("public_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, https_only=False)


class Consent(Section):
    """The wording shown at signup. Change `version` whenever `wording` changes."""

    _multiline: ClassVar[frozenset[str]] = frozenset({"wording"})
    version: str = Field(min_length=1)
    wording: str = Field(min_length=10)


class Console(Section):
    """The owner console under /console/ (it stays off until `nurture owner add` makes an account)."""

    enabled: bool = True
    require_totp: bool = False
    idle_timeout_minutes: int = Field(default=30, ge=1, le=24 * 60)
    absolute_timeout_hours: float = Field(default=12, gt=0, le=7 * 24)
    # The largest CSV file the console takes, in megabytes (about 12,000 people a megabyte).
    import_max_mb: int = Field(default=20, ge=1, le=500)


class Sunset(Section):
    """Re-permission of quiet readers instead of tracking-based sunsetting (docs/inbox.md).

    Off by default. A reader is quiet when nurture has had no sign of life from them
    (a preference-center visit or change, a tag in `life_tags`, a click where
    `delivery.tracking: per_person` ties it to them) for `quiet_for`, while at least
    `min_emails` emails went to them. Quiet readers get one "still want these?" email;
    whoever does not answer within `answer_within` is paused or unsubscribed (`then`).
    """

    enabled: bool = False
    quiet_for: timedelta = Field(default=timedelta(days=180), ge=timedelta(days=30), le=timedelta(days=1095))
    min_emails: int = Field(default=5, ge=1, le=100)
    answer_within: timedelta = Field(default=timedelta(days=30), ge=timedelta(days=7), le=timedelta(days=90))
    then: Literal["pause", "unsubscribe"] = "pause"
    life_tags: tuple[str, ...] = ("booked", "replied")

    @field_validator("quiet_for", "answer_within", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return check_duration(value)

    @field_validator("life_tags")
    @classmethod
    def _tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(tag.strip().lower() for tag in value if tag.strip())


class Bounces(Section):
    """When repeated soft bounces count as a bounce (docs/inbox.md#bounces).

    A hard bounce stops mail to that person at once. A soft one (a full mailbox, a server
    refusing for now, a block) may clear by itself, so it takes `soft_limit` emails that
    soft-bounced within `soft_window`; an undetermined bounce counts as soft.
    """

    soft_limit: int = Field(default=3, ge=1, le=50)
    soft_window: timedelta = Field(default=timedelta(days=15), ge=timedelta(days=1), le=timedelta(days=90))

    @field_validator("soft_window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return check_duration(value)


class Deliverability(Section):
    """What `nurture doctor` expects of the sending domain's DNS (docs/inbox.md)."""

    # DKIM selectors to look up under <selector>._domainkey.<from domain>; empty: the
    # provider's usual ones (nurture.deliverability.provider_dns).
    dkim_selectors: tuple[str, ...] = ()
    # The MAIL FROM / Return-Path domain the provider shows once the domain is
    # authenticated (SendGrid: em1234.example.com); empty: not checked.
    return_path_domain: str | None = None

    @field_validator("dkim_selectors")
    @classmethod
    def _selectors(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for selector in value:
            if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})", selector):
                raise ValueError(f"{selector!r} is not a DKIM selector (letters, digits, '.', '-', '_')")
        return value

    @field_validator("return_path_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        domain = value.strip().rstrip(".").lower()
        if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}", domain):
            raise ValueError(f"{value!r} is not a domain name (like em1234.example.com)")
        return domain


_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
_SES_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]")
_SES_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Ses(Section):
    """Amazon SES (`delivery.transport: ses`; docs/providers.md). AWS credentials come from
    the standard chain (environment, profile, instance role), never from this file."""

    region: str | None = None
    configuration_set: str | None = None
    # The topic the configuration set publishes events to: POST /webhooks/ses accepts its
    # notifications only, and confirms a subscription for it only.
    sns_topic_arn: str | None = None
    # The SQS queue subscribed to that topic: `nurture events poll` and `nurture run` read it.
    events_queue_url: str | None = None

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _SES_REGION.fullmatch(value):
            raise ValueError(f"{value!r} is not an AWS region (like us-east-1)")
        return value

    @field_validator("configuration_set")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not _SES_NAME.fullmatch(value):
            raise ValueError("a configuration set name is letters, digits, '_' and '-' (at most 64)")
        return value

    @field_validator("sns_topic_arn")
    @classmethod
    def _arn(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(
            r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}", value
        ):
            raise ValueError(f"{value!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        return value

    @field_validator("events_queue_url")
    @classmethod
    def _queue(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value, https_only=False)


class Smtp(Section):
    """An SMTP relay (`delivery.transport: smtp`; docs/providers.md). The password comes from
    NURTURE_SMTP_PASSWORD, never from this file."""

    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    # Bounces come back to bounces+<delivery key>@<bounce_domain> (VERP); empty: the
    # sender's domain. Its mailbox is what `nurture bounces fetch` reads.
    bounce_domain: str | None = None
    pool_size: int = Field(default=4, ge=1, le=32)
    # Where bounce messages land: a local Maildir, or an IMAP mailbox over TLS (its password
    # from NURTURE_BOUNCES_IMAP_PASSWORD).
    bounces_maildir: Path | None = None
    bounces_imap_host: str | None = None
    bounces_imap_port: int = Field(default=993, ge=1, le=65535)
    bounces_imap_username: str | None = None
    bounces_imap_folder: str = "INBOX"

    @field_validator("host", "bounces_imap_host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host = value.strip().lower()
        if not re.fullmatch(r"[a-z0-9.:\[\]-]{1,253}", host):
            raise ValueError(f"{value!r} is not a host name")
        return host

    @field_validator("bounce_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        domain = value.strip().rstrip(".").lower()
        if not re.fullmatch(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}", domain):
            raise ValueError(f"{value!r} is not a domain name (like bounces.example.com)")
        return domain

    @model_validator(mode="after")
    def _plain_only_locally(self) -> Smtp:
        # Without TLS the password and every email cross the network readable: only to a
        # relay on this machine (a local Postfix).
        if self.security == "none" and self.host is not None and self.host not in _LOOPBACK_HOSTS:
            raise ValueError(
                f"security 'none' sends mail unencrypted: allowed only to this machine "
                f"(localhost, 127.0.0.1), not to {self.host}; use starttls (port 587) or tls (465)"
            )
        return self


class Retention(Section):
    """How long per-person records are kept (docs/providers.md#data-kept-no-longer-than-needed).

    `nurture retention apply` (and `nurture run`, once a day) deletes provider events
    older than `provider_events` and finished deliveries older than `deliveries`,
    keeping each email's totals for the results pages."""

    provider_events: timedelta = Field(
        default=timedelta(days=90), ge=timedelta(days=7), le=timedelta(days=3650)
    )
    deliveries: timedelta = Field(default=timedelta(days=400), ge=timedelta(days=30), le=timedelta(days=3650))

    @field_validator("provider_events", "deliveries", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return check_duration(value)


class Settings(Section):
    practice: Practice
    sender: Sender
    delivery: Delivery = Delivery()
    database: Database = Database()
    web: Web = Web()
    consent: Consent
    console: Console = Console()
    sunset: Sunset = Sunset()
    bounces: Bounces = Bounces()
    deliverability: Deliverability = Deliverability()
    ses: Ses = Ses()
    smtp: Smtp = Smtp()
    retention: Retention = Retention()
