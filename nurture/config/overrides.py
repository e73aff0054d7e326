"""Settings the owner changes in the console, laid over config.yaml.

Precedence, lowest first: config.yaml, then the console's saved settings, then the
environment (`NURTURE_<SECTION>__<KEY>`): an operator's variable is a deliberate
choice for this server, so the console shows such a key as fixed instead of
silently losing to it. config.yaml stays the source for a fresh install; a saved
value only exists once the owner changes one.

`apply_saved` is pure: given the file's Config and the saved values (the store's
`saved_settings` rows, read by nurture.store.saved_settings), it returns the Config
every command then uses (App.config). A saved value that no longer validates (a
config.yaml edit made the pair of window times impossible, a zone gone from the
time zone database, a row edited by hand) never stops anything: that key falls back
to config.yaml's value and the problem is returned, for the log, the console's
Today and Settings pages and the command line to say so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from nurture.config.loading import Config
from nurture.config.sections import Settings

ORIGIN = "the console's Settings page"
ENVIRONMENT = "environment variable"

Kind = Literal["text", "address", "optional_address", "multiline", "time", "bool", "count", "zone", "hidden"]


@dataclass(frozen=True)
class Editable:
    """One setting the owner may change in the console."""

    key: str  # dotted, as in config.yaml
    label: str  # in the owner's words
    kind: Kind
    hint: str = ""

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(self.key.split("."))


EDITABLE: dict[str, Editable] = {
    item.key: item
    for item in (
        Editable("sender.from_name", "Sender name", "text", "The name people see as the sender."),
        Editable(
            "sender.from_email",
            "Sender address",
            "address",
            "The address emails come from. Your email provider must know it (a verified sender).",
        ),
        Editable(
            "practice.reply_to",
            "Reply-to address",
            "optional_address",
            "Where replies go. Leave it empty to let replies go to the sender address.",
        ),
        Editable(
            "practice.postal_address",
            "Postal address",
            "multiline",
            "Shown at the foot of every email, as the law on marketing email asks.",
        ),
        Editable(
            "delivery.send_window.start",
            "Sending starts at",
            "time",
            "In each reader's own time zone, 24-hour clock.",
        ),
        Editable("delivery.send_window.end", "Sending stops at", "time", "Must be later than the start."),
        Editable("delivery.weekdays_only", "Weekdays only", "bool", "No emails on Saturdays and Sundays."),
        Editable(
            "delivery.max_emails_per_day",
            "Emails per person per day",
            "count",
            "At most this many of your emails reach one person in a day (1 to 10).",
        ),
        Editable(
            "delivery.default_timezone",
            "Practice time zone",
            "zone",
            "For people whose own zone is not known, and for times you type here. "
            "For example America/New_York or Europe/London.",
        ),
        Editable(
            "consent.wording",
            "Consent wording",
            "multiline",
            "What people agree to on the signup page. Changing it starts a new wording version: "
            "each person's record keeps the words they saw.",
        ),
        Editable("consent.version", "Consent wording version", "hidden"),
        Editable(
            "practice.owner_email",
            "Alert address",
            "optional_address",
            "Where the weekly summary and alerts go. Leave it empty for none.",
        ),
    )
}
# Saved and dropped together: a wording is only ever used under its own version.
TOGETHER = (frozenset({"consent.wording", "consent.version"}),)


@dataclass(frozen=True)
class SettingProblem:
    """A saved value that is not used. `reason` may quote the value: show it, do not log it."""

    key: str
    reason: str

    @property
    def label(self) -> str:
        spec = EDITABLE.get(self.key)
        return spec.label if spec is not None else self.key

    def brief(self) -> str:
        """Without the reason, which may quote the value: for logs and the command line."""
        return (
            f"the setting {self.label!r} saved in the console cannot be used; "
            "config.yaml's value is used instead (the console's Settings page says why)"
        )

    def __str__(self) -> str:
        return (
            f"{self.label}: the value saved in the console cannot be used ({self.reason}); "
            "the value from the configuration file is used instead. Open Settings to fix it."
        )


@dataclass(frozen=True)
class Applied:
    config: Config
    used: dict[str, Any] = field(default_factory=dict)  # the saved values in effect, by key
    problems: list[SettingProblem] = field(default_factory=list)


def value_at(settings: Settings, key: str) -> Any:
    node: Any = settings
    for part in key.split("."):
        node = getattr(node, part)
    return node


def set_by_environment(config: Config, key: str) -> str | None:
    """The environment variable that fixes `key` on this server, if one does."""
    origin = config.origins.get(tuple(key.split(".")), "")
    return origin.removeprefix(ENVIRONMENT).strip() if origin.startswith(ENVIRONMENT) else None


def _related(path: tuple[str, ...], loc: tuple[str, ...]) -> bool:
    return loc[: len(path)] == path or path[: len(loc)] == loc


def _with_partners(keys: set[str]) -> set[str]:
    for group in TOGETHER:
        if keys & group:
            keys |= group
    return keys


def _merged(base: Config, values: Mapping[str, Any]) -> Settings:
    data = base.settings.model_dump()
    for key, value in values.items():
        node = data
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return Settings.model_validate(data)


def apply_saved(base: Config, saved: Mapping[str, Any]) -> Applied:
    """`base` (config.yaml and the environment) with the saved values laid over it."""
    problems: list[SettingProblem] = []
    usable: dict[str, Any] = {}
    for key, value in saved.items():
        if key not in EDITABLE:
            problems.append(SettingProblem(key, "it is not a setting the console can change"))
        elif set_by_environment(base, key) is None:
            usable[key] = value
    missing = {key for group in TOGETHER if usable.keys() & group for key in group - usable.keys()}
    for key in sorted(missing):
        problems.append(SettingProblem(key, "it was saved without its partner setting"))
    for key in _with_partners(set(missing)):
        usable.pop(key, None)
    while usable:
        try:
            settings = _merged(base, usable)
            break
        except ValidationError as exc:
            bad: set[str] = set()
            for error in exc.errors():
                loc = tuple(str(part) for part in error["loc"])
                found = {key for key in usable if _related(EDITABLE[key].path, loc)}
                reason = str(error["msg"]).removeprefix("Value error, ")
                problems.extend(SettingProblem(key, reason) for key in sorted(found - bad))
                bad |= found
            if not bad:
                # The file alone validates, so a failure always names a saved value; one that
                # named none leaves none to be trusted.
                bad = set(usable)
                problems.extend(SettingProblem(key, str(exc.errors()[0]["msg"])) for key in sorted(bad))
            for key in _with_partners(bad):
                usable.pop(key, None)
    else:
        return Applied(base, {}, problems)
    origins = {**base.origins, **{EDITABLE[key].path: ORIGIN for key in usable}}
    return Applied(dataclasses.replace(base, settings=settings, origins=origins), usable, problems)
