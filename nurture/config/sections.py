"""The sections of config.yaml as pydantic models: every key, its default and its rule."""

from __future__ import annotations

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
    transport: Literal["outbox", "sendgrid"] = "outbox"
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
    # How long a claim with an unknown outcome waits for a provider event before silence
    # (with the webhook proven to work) counts as "never reached the provider".
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


class Settings(Section):
    practice: Practice
    sender: Sender
    delivery: Delivery = Delivery()
    database: Database = Database()
    web: Web = Web()
    consent: Consent
    console: Console = Console()
