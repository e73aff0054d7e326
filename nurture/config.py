"""config.yaml, validated by pydantic, with environment overrides.

Order of precedence: the file named by NURTURE_CONFIG (else ./config.yaml), then
`NURTURE_<SECTION>__<KEY>[__<SUBKEY>]` variables, then NURTURE_DATABASE_URL.
Secrets never live in the file: NURTURE_SECRET_KEY and SENDGRID_API_KEY come
from the environment only.

Every problem becomes one `ConfigError` naming the file, the line where it is
known, the key and what to do.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from nurture.errors import ConfigError
from nurture.yaml_lines import OwnerYamlError, read_owner_yaml

ENV_PREFIX = "NURTURE_"
SECRET_ENV = "NURTURE_SECRET_KEY"
SENDGRID_KEY_ENV = "SENDGRID_API_KEY"
SENDGRID_HOST_ENV = "NURTURE_SENDGRID_HOST"
WEBHOOK_KEY_ENV = "NURTURE_SENDGRID_WEBHOOK_PUBLIC_KEY"
BOOKING_SECRET_ENV = "NURTURE_BOOKING_WEBHOOK_SECRET"
PREVIOUS_SECRETS_ENV = "NURTURE_PREVIOUS_SECRET_KEYS"
# Variables that look like overrides but are not config keys.
_NOT_OVERRIDES = {
    SECRET_ENV,
    SENDGRID_HOST_ENV,
    WEBHOOK_KEY_ENV,
    BOOKING_SECRET_ENV,
    PREVIOUS_SECRETS_ENV,
    "NURTURE_CONFIG",
    "NURTURE_DATABASE_URL",
}
_DURATION_UNITS = {"m": 60, "h": 3600, "d": 86400}
_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::00)?")


def _check_address(value: str) -> str:
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address ({exc})") from None


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA time zone (for example Europe/Berlin, America/New_York)"
        ) from None
    return value


def _check_url(value: str, *, https_only: bool) -> str:
    allowed = ("https://",) if https_only else ("https://", "http://")
    if not value.startswith(allowed) or len(value) <= len(allowed[0]):
        need = "an https:// URL" if https_only else "an http:// or https:// URL"
        raise ValueError(f"{value!r} must be {need}")
    return value.rstrip("/")


def _check_duration(value: Any) -> Any:
    """ "6h", "90m", "1d" (or a number of seconds) as a timedelta."""
    if isinstance(value, str):
        text = value.strip().lower()
        if len(text) < 2 or text[-1] not in _DURATION_UNITS or not text[:-1].isdigit():
            raise ValueError(f"{value!r} is not a duration: use a number and a unit, like 90m, 6h or 1d")
        return timedelta(seconds=int(text[:-1]) * _DURATION_UNITS[text[-1]])
    return value


def _control_character(value: str, allowed: str) -> str | None:
    """The first control or invisible formatting character in `value` not in `allowed`, if any."""
    if value.isprintable():  # the common case: no Cc/Cf/Zl/Zp character at all
        return None
    return next(
        (ch for ch in value if ch not in allowed and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")),
        None,
    )


def _clock(value: object) -> time:
    """'9:00' or '09:00' (optionally ':00' seconds) as a time of day; anything else is refused.

    Numbers are refused rather than read as seconds: YAML 1.1 turned an unquoted 9:00
    into 540, and a window of 00:09 is never what the owner meant."""
    if isinstance(value, time) and value.tzinfo is None:
        return value
    match = _CLOCK.fullmatch(value.strip()) if isinstance(value, str) else None
    if match and int(match[1]) < 24 and int(match[2]) < 60:
        return time(int(match[1]), int(match[2]))
    raise ValueError(
        f'{value!r} is not a time of day: write it as "HH:MM" (24-hour, in quotes), from "00:00" to "23:59"'
    )


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # Keys whose text may span lines; every other text goes into one line of a page or a header.
    _multiline: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            allowed = "\n\t" if info.field_name in cls._multiline else ""
            bad = _control_character(value, allowed)
            if bad is not None:
                raise ValueError(
                    f"holds the control character U+{ord(bad):04X}: "
                    "remove it (retype the value if you pasted it)"
                )
        return value


class Practice(_Section):
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
        return _check_url(value, https_only=True)

    @field_validator("reply_to", "unsubscribe_mailto", "owner_email")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _check_address(value)


class Sender(_Section):
    from_email: str
    from_name: str = Field(min_length=1)

    @field_validator("from_email")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_address(value)


class SendWindow(_Section):
    start: time = time(9, 0)
    end: time = time(17, 0)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time_of_day(cls, value: object) -> time:
        return _clock(value)

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end:%H:%M}) must be later than start ({self.start:%H:%M})")
        return self


class Delivery(_Section):
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
        return _check_zone(value)

    @field_validator("tracking", mode="before")
    @classmethod
    def _unquoted_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare `off` as false.
        return "off" if value is False else value

    @field_validator("reconcile_after", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return _check_duration(value)


class Database(_Section):
    url: str = "sqlite:///nurture.db"


class Web(_Section):
    public_base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @field_validator("public_base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, https_only=False)


class Consent(_Section):
    """The wording shown at signup. Change `version` whenever `wording` changes."""

    _multiline: ClassVar[frozenset[str]] = frozenset({"wording"})
    version: str = Field(min_length=1)
    wording: str = Field(min_length=10)


class Console(_Section):
    """The owner console under /console/ (it stays off until `nurture owner add` makes an account)."""

    enabled: bool = True
    require_totp: bool = False
    idle_timeout_minutes: int = Field(default=30, ge=1, le=24 * 60)
    absolute_timeout_hours: float = Field(default=12, gt=0, le=7 * 24)


class Settings(_Section):
    practice: Practice
    sender: Sender
    delivery: Delivery = Delivery()
    database: Database = Database()
    web: Web = Web()
    consent: Consent
    console: Console = Console()


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

    def require_sendgrid_key(self) -> str:
        if not self.sendgrid_api_key:
            raise ConfigError(
                f"delivery.transport is 'sendgrid' but {SENDGRID_KEY_ENV} is not set: "
                "create an API key limited to Mail Send in SendGrid and export it."
            )
        return self.sendgrid_api_key


@dataclass(frozen=True)
class Config:
    settings: Settings
    secrets: Secrets
    path: Path
    base_dir: Path  # relative paths in the file (outbox_dir, sqlite files) are relative to this
    # Where each key set by an environment variable or written in the file came from.
    origins: Mapping[tuple[str, ...], str] = field(default_factory=dict)

    def where(self, *key: str) -> str:
        """'environment variable X' or 'config.yaml, line N' (or the file alone) for a key path."""
        return self.origins.get(key) or str(self.path)

    def prepare_outbox_dir(self) -> Path:
        """The outbox folder, created if missing; ConfigError if it cannot be a folder."""
        directory = self.outbox_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"{self.where('delivery', 'outbox_dir')}: delivery.outbox_dir: "
                f"{directory} cannot be used as the outbox folder "
                f"({exc.strerror or exc}); point it at a folder you can write to"
            ) from None
        return directory

    def database_folder_error(self, exc: OSError) -> ConfigError:
        """The error to show when the folder of a SQLite database.url cannot be created."""
        return ConfigError(
            f"{self.where('database', 'url')}: database.url: the folder "
            f"for the SQLite file in {self.settings.database.url} "
            f"cannot be created ({exc.strerror or exc}); point database.url at a folder you can write to"
        )

    @property
    def practice(self) -> Practice:
        return self.settings.practice

    @property
    def sender(self) -> Sender:
        return self.settings.sender

    @property
    def delivery(self) -> Delivery:
        return self.settings.delivery

    @property
    def web(self) -> Web:
        return self.settings.web

    @property
    def consent(self) -> Consent:
        return self.settings.consent

    @property
    def console(self) -> Console:
        return self.settings.console

    @property
    def database_url(self) -> str:
        url = self.settings.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.base_dir / url[len(prefix) :])
        return url

    @property
    def outbox_dir(self) -> Path:
        return self.base_dir / self.delivery.outbox_dir

    @property
    def campaigns_dir(self) -> Path:
        return self.base_dir / "campaigns"

    @property
    def templates_dir(self) -> Path:
        return self.base_dir / "templates"


def _env_value(raw: str) -> Any:
    """An override's value: read as owner YAML (so 500 is a number), else kept as text.

    Text over several lines is kept as it is: YAML would fold its line breaks into spaces."""
    if not raw.strip() or "\n" in raw or "\r" in raw:
        return raw
    try:
        return read_owner_yaml(raw).data
    except OwnerYamlError:
        return raw


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any, str]]:
    overrides = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _NOT_OVERRIDES or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty key part; use NURTURE_SECTION__KEY")
        overrides.append((path, _env_value(raw), name))
    if environ.get("NURTURE_DATABASE_URL"):
        overrides.append((("database", "url"), environ["NURTURE_DATABASE_URL"], "NURTURE_DATABASE_URL"))
    return overrides


def _previous_keys(environ: Mapping[str, str]) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in environ.get(PREVIOUS_SECRETS_ENV, "").split(",") if key.strip())
    if any(len(key) < 16 for key in keys):
        raise ConfigError(
            f"{PREVIOUS_SECRETS_ENV}: every key must be at least 16 characters (separate keys with commas)"
        )
    return keys


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any, origin: str) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"environment variable {origin}: {'.'.join(path[:-1])} is not a section")
        node = child
    node[path[-1]] = value


def _describe(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key; check the spelling against the example config.yaml"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if "input" in error and kind not in ("value_error",) and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    return message


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read, merge and validate the configuration. Raises ConfigError on any problem."""
    env = os.environ if environ is None else environ
    config_path = Path(path or env.get("NURTURE_CONFIG") or "config.yaml")
    where = str(config_path)
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{where}: config file not found. Run nurture from the project folder, "
            "or point NURTURE_CONFIG at your config.yaml."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read the config file ({exc})") from None

    try:
        document = read_owner_yaml(text)
    except OwnerYamlError as exc:
        line = f", line {exc.line}" if exc.line is not None else ""
        hint = " Check indentation and quoting." if exc.message.startswith("YAML syntax error") else ""
        raise ConfigError(f"{where}{line}: {exc.message}.{hint}") from None
    data, lines = document.data, document.lines
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of sections (practice:, sender:, ...)")

    origins: dict[tuple[str, ...], str] = {}
    for key_path, value, origin in _env_overrides(env):
        _set_path(data, key_path, value, origin)
        origins[key_path] = origin

    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key_path = tuple(str(part) for part in error["loc"])
            key = ".".join(key_path) or "(top level)"
            override = next((origins[p] for p in origins if key_path[: len(p)] == p), None)
            if override:
                location = f"environment variable {override}"
            else:
                line_number = next(
                    (lines[key_path[:n]] for n in range(len(key_path), 0, -1) if key_path[:n] in lines), None
                )
                location = f"{where}, line {line_number}" if line_number else where
            problems.append(f"{location}: {key}: {_describe(error)}")
        raise ConfigError("\n".join(problems)) from None

    secrets = Secrets(
        secret_key=env.get(SECRET_ENV) or None,
        sendgrid_api_key=env.get(SENDGRID_KEY_ENV) or None,
        sendgrid_host=(env.get(SENDGRID_HOST_ENV) or "https://api.sendgrid.com").rstrip("/"),
        webhook_public_key=env.get(WEBHOOK_KEY_ENV) or None,
        booking_webhook_secret=env.get(BOOKING_SECRET_ENV) or None,
        previous_secret_keys=_previous_keys(env),
    )
    located = {key_path: f"{where}, line {line_number}" for key_path, line_number in lines.items()}
    located.update({key_path: f"environment variable {origin}" for key_path, origin in origins.items()})
    if settings.delivery.transport == "sendgrid" and not secrets.sendgrid_api_key:
        # Say where sendgrid was chosen: the file's line, or the variable that overrode it.
        location = located.get(("delivery", "transport"), where)
        try:
            secrets.require_sendgrid_key()
        except ConfigError as exc:
            raise ConfigError(f"{location}: {exc}") from None
    return Config(
        settings=settings,
        secrets=secrets,
        path=config_path,
        base_dir=config_path.resolve().parent,
        origins=located,
    )
