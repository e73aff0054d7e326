"""Reading config.yaml: the file, then environment overrides, validated into one Config.

Order of precedence: the file named by NURTURE_CONFIG (else ./config.yaml), then
`NURTURE_<SECTION>__<KEY>[__<SUBKEY>]` variables, then NURTURE_DATABASE_URL.
Every problem becomes one `ConfigError` naming the file, the line where it is
known, the key and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nurture.config.secrets import (
    BOOKING_SECRET_ENV,
    ENV_PREFIX,
    IMAP_PASSWORD_ENV,
    NOT_OVERRIDES,
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
    Deliverability,
    Delivery,
    Practice,
    Retention,
    Sender,
    Ses,
    Settings,
    Smtp,
    Sunset,
    Web,
)
from nurture.errors import ConfigError
from nurture.yaml_lines import OwnerYamlError, read_owner_yaml


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
    def sunset(self) -> Sunset:
        return self.settings.sunset

    @property
    def bounces(self) -> Bounces:
        return self.settings.bounces

    @property
    def deliverability(self) -> Deliverability:
        return self.settings.deliverability

    @property
    def ses(self) -> Ses:
        return self.settings.ses

    @property
    def smtp(self) -> Smtp:
        return self.settings.smtp

    @property
    def retention(self) -> Retention:
        return self.settings.retention

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
        if not name.startswith(ENV_PREFIX) or name in NOT_OVERRIDES or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty key part; use NURTURE_SECTION__KEY")
        overrides.append((path, _env_value(raw), name))
    if environ.get("NURTURE_DATABASE_URL"):
        overrides.append((("database", "url"), environ["NURTURE_DATABASE_URL"], "NURTURE_DATABASE_URL"))
    return overrides


def _check_transport_settings(settings: Settings, located: Mapping[tuple[str, ...], str], where: str) -> None:
    """The keys the chosen transport cannot work without, named where the transport was chosen."""
    transport = settings.delivery.transport
    missing: list[tuple[str, str]] = []
    if transport == "ses":
        if not settings.ses.region:
            missing.append(("ses.region", "the AWS region of the SES account, like us-east-1"))
        if not settings.ses.configuration_set:
            missing.append(
                ("ses.configuration_set", "the configuration set that publishes events (docs/providers.md)")
            )
    elif transport == "smtp" and not settings.smtp.host:
        missing.append(("smtp.host", "the relay's host name, like smtp.paubox.net"))
    if missing:
        location = located.get(("delivery", "transport"), where)
        raise ConfigError(
            "\n".join(
                f"{location}: delivery.transport is {transport!r} but {key} is not set: add {what}"
                for key, what in missing
            )
        )


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
        smtp_password=env.get(SMTP_PASSWORD_ENV) or None,
        bounces_imap_password=env.get(IMAP_PASSWORD_ENV) or None,
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
    _check_transport_settings(settings, located, where)
    return Config(
        settings=settings,
        secrets=secrets,
        path=config_path,
        base_dir=config_path.resolve().parent,
        origins=located,
    )
