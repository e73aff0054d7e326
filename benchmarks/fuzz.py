"""Feed generated hostile and careless inputs to nurture and count what goes wrong.

    .venv/bin/python benchmarks/fuzz.py                       # 2,000 inputs over every surface
    .venv/bin/python benchmarks/fuzz.py --inputs 20000 --seed 7 --surface config --surface tokens
    .venv/bin/python benchmarks/fuzz.py --keep failures/      # write each failing input to a file

Per surface it prints how many inputs it tried and how many gave:
  tracebacks     an exception other than nurture's own errors (NurtureError) escaped
  hangs          the input took longer than --timeout seconds
  partial writes a file appeared or changed where the operation must write nothing
  log leaks      a log line or error message carried a secret, a token or a person's address
  forgeries      (tokens) a spelling other than the one nurture wrote was accepted
The target is zeros everywhere; the exit code is 1 otherwise.

Inputs are mutations of valid files and values, spliced with fragments known to hurt
parsers (YAML aliases and base-60 numbers, deep nesting, control characters, Jinja
statements, odd base64). A surface is a function registered with @surface: generate an
input from the Random, run it, return an Outcome (or raise to count a traceback). The
web surfaces (forms, token paths, signed webhook batches) need a live server and have
their own driver: benchmarks/fuzz_web.py.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from nurture import tokens
from nurture.app import App
from nurture.audience.importer import import_csv
from nurture.config import load_config
from nurture.content.checks import check_content
from nurture.errors import NurtureError
from nurture.store import models as m
from nurture.store.db import transaction

REPO = Path(__file__).resolve().parents[1]
SECRET = "fuzz-secret-key-0123456789abcdef"
PERSON = "leaky.person@example.com"
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)

# Fragments known to hurt: the reproductions and their neighbours.
FRAGMENTS = [
    "9:00",
    "09:00",
    "25:00",
    "17:00",
    "1:30.5",
    "0x1F",
    "010",
    "1e400",
    ".nan",
    "~",
    "yes",
    "no",
    "null",
    "2026-01-01",
    "&a",
    "*a",
    "&a [*a, *a]",
    "<<: *a",
    "!!python/object:os.system",
    "!!binary AAAA",
    "!!set {a}",
    "[" * 2000 + "]" * 2000,
    "{" * 300,
    "- " * 300,
    "a: " * 50,
    "'",
    '"',
    '"unclosed',
    "'unclosed",
    "\x00",
    "\x01",
    "\x1b[31m",
    "\r",
    "\n",
    "\t",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\ud800",
    "\u2003",
    "\x0b",
    "{{ 1/0 }}",
    "{% include 'x' %}",
    "{% import 'x' as y %}",
    "{% extends 'x' %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ ''.__class__ }}",
    "{{ 'a' * 10**9 }}",
    "{{ practice_name }}",
    "{% raw %}{{ x }}{% endraw %}",
    "[[ first_name ]]",
    "-first_name_html-",
    "{{ (" * 500,
    "x" * 303,
    "../../etc/passwd",
    "/dev/null",
    "/proc/nope",
    "sqlite:////proc/nope/x.db",
    "http://",
    "https://",
    PERSON,
    "A" * 10_000,
    "\\",
    "%",
    "@",
    "#",
    "|",
    ">",
    "? ",
    ": ",
    ", ",
]


@dataclass
class Outcome:
    written: list[str] = field(default_factory=list)  # unexpected files written
    leaked: list[str] = field(default_factory=list)  # secrets or addresses seen in messages or logs
    forged: bool = False


@dataclass
class Tally:
    inputs: int = 0
    tracebacks: int = 0
    hangs: int = 0
    partial_writes: int = 0
    log_leaks: int = 0
    forgeries: int = 0


Surface = Callable[[random.Random, Path], Outcome]
SURFACES: dict[str, Surface] = {}
ELSEWHERE = "forms, token paths and webhook batches: benchmarks/fuzz_web.py"


def surface(name: str) -> Callable[[Surface], Surface]:
    def register(func: Surface) -> Surface:
        SURFACES[name] = func
        return func

    return register


# -- generating --------------------------------------------------------------------------


def mutate(rng: random.Random, text: str, rounds: int = 3) -> str:
    """Random edits: splice a fragment, delete, duplicate or flip a character."""
    for _ in range(rng.randint(1, rounds)):
        at = rng.randint(0, len(text))
        choice = rng.random()
        if choice < 0.5:
            text = text[:at] + rng.choice(FRAGMENTS) + text[at:]
        elif choice < 0.7 and text:
            text = text[:at] + text[at + rng.randint(1, 20) :]
        elif choice < 0.85:
            text = text[:at] + text[at : at + rng.randint(1, 40)] * rng.randint(2, 5) + text[at:]
        else:
            text = text[:at] + chr(rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x2FFF)])) + text[at:]
    return text


def replace_value(rng: random.Random, text: str) -> str:
    """Give one `key: value` line a hostile value."""
    lines = text.splitlines()
    candidates = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
    if not candidates:
        return mutate(rng, text)
    index = rng.choice(candidates)
    key = lines[index].split(": ", 1)[0]
    value = rng.choice(FRAGMENTS) if rng.random() < 0.7 else mutate(rng, rng.choice(FRAGMENTS))
    lines[index] = f"{key}: {value}"
    return "\n".join(lines) + "\n"


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def changed(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    return sorted(name for name in after if before.get(name) != after[name])


def project(work: Path) -> Path:
    """A fresh copy of the example project with one short campaign (cheap to check)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    shutil.copy(REPO / "config.yaml", work / "config.yaml")
    shutil.copytree(REPO / "templates", work / "templates")
    series = work / "campaigns" / "fuzz"
    series.mkdir(parents=True)
    shutil.copy(REPO / "campaigns" / "kap-intro" / "01-what-is-kap.md", series / "01-step.md")
    (series / "campaign.yaml").write_text(
        "title: Fuzz\nsteps:\n  - file: 01-step.md\n    delay_days: 0\n", encoding="utf-8"
    )
    return work / "config.yaml"


def leaks(messages: list[str], secrets: list[str]) -> list[str]:
    return [s for s in secrets if s and any(s in message for message in messages)]


# -- the surfaces --------------------------------------------------------------------------


@surface("config")
def config_surface(rng: random.Random, work: Path) -> Outcome:
    path = project(work)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        replace_value(rng, text) if rng.random() < 0.6 else mutate(rng, text),
        encoding="utf-8",
        errors="surrogatepass",
    )
    before = snapshot(work)
    messages: list[str] = []
    try:
        load_config(path, environ={"NURTURE_SECRET_KEY": SECRET})
    except NurtureError as exc:
        messages.append(str(exc))
    return Outcome(written=changed(before, snapshot(work)), leaked=leaks(messages + LOG.lines, [SECRET]))


ENV_KEYS = [
    "NURTURE_PRACTICE__NAME",
    "NURTURE_PRACTICE__POSTAL_ADDRESS",
    "NURTURE_PRACTICE__WEBSITE",
    "NURTURE_SENDER__FROM_EMAIL",
    "NURTURE_SENDER__FROM_NAME",
    "NURTURE_DELIVERY__SEND_WINDOW__START",
    "NURTURE_DELIVERY__SEND_WINDOW__END",
    "NURTURE_DELIVERY__SEND_WINDOW",
    "NURTURE_DELIVERY__BATCH_SIZE",
    "NURTURE_DELIVERY__OUTBOX_DIR",
    "NURTURE_DELIVERY__TRANSPORT",
    "NURTURE_DELIVERY__DEFAULT_TIMEZONE",
    "NURTURE_WEB__PORT",
    "NURTURE_WEB__PUBLIC_BASE_URL",
    "NURTURE_CONSENT__WORDING",
    "NURTURE_DATABASE_URL",
    "NURTURE_PREVIOUS_SECRET_KEYS",
    "NURTURE_X__Y__Z",
    "NURTURE_DELIVERY____X",
]


@surface("env")
def env_surface(rng: random.Random, work: Path) -> Outcome:
    path = project(work)
    environ = {"NURTURE_SECRET_KEY": SECRET}
    for _ in range(rng.randint(1, 3)):
        value = (
            rng.choice(FRAGMENTS)
            if rng.random() < 0.6
            else mutate(rng, rng.choice(FRAGMENTS + ["09:00", "500", "outbox"]))
        )
        environ[rng.choice(ENV_KEYS)] = value.replace("\x00", "")  # the environment cannot hold NUL
    before = snapshot(work)
    messages: list[str] = []
    try:
        config = load_config(path, environ=environ)
        config.prepare_outbox_dir()  # the one place a value becomes a folder on disk
    except NurtureError as exc:
        messages.append(str(exc))
    written = [name for name in changed(before, snapshot(work)) if not name.startswith("outbox")]
    return Outcome(written=written, leaked=leaks(messages + LOG.lines, [SECRET]))


@surface("content")
def content_surface(rng: random.Random, work: Path) -> Outcome:
    path = project(work)
    series = work / "campaigns" / "fuzz"
    target = rng.choice(["campaign.yaml", "01-step.md", "01-step.md"])
    file = series / target
    text = file.read_text(encoding="utf-8")
    if target == "01-step.md" and rng.random() < 0.5:
        head, _, body = text.partition("\n---\n")
        text = f"{head}\n---\n{mutate(rng, body)}"
    else:
        text = replace_value(rng, text) if rng.random() < 0.6 else mutate(rng, text)
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    config = load_config(path, environ={"NURTURE_SECRET_KEY": SECRET})
    before = snapshot(work)
    messages: list[str] = []
    try:
        report = check_content(config)
        messages.append(report.render())
    except NurtureError as exc:
        messages.append(str(exc))
    return Outcome(written=changed(before, snapshot(work)), leaked=leaks(messages + LOG.lines, [SECRET]))


CSV_HEADER = "email,first_name,timezone,consented_at,consent_source\n"
CSV_ROWS = [
    f"{PERSON},Leaky,Europe/Berlin,2026-11-30T10:00:00Z,open day sheet",
    "sam@example.com,Sam,America/Chicago,2026-11-29 09:00,web form",
    "ana@example.org,,,2025-06-01,paper form",
]


def _store_counts(app: App) -> tuple[int, int, int]:
    with transaction(app.engine) as session:
        return tuple(  # type: ignore[return-value]
            session.query(model).count() for model in (m.Subscriber, m.ConsentEvent, m.Enrollment)
        )


@surface("csv")
def csv_surface(rng: random.Random, work: Path) -> Outcome:
    """`nurture import`: a CSV of mutated rows. Refused means nothing written; no log names a person."""
    path = project(work)
    rows = [rng.choice(CSV_ROWS) for _ in range(rng.randint(1, 6))]

    def vary(row: str) -> str:
        roll = rng.random()
        return row if roll < 0.2 else replace_value(rng, row) if roll < 0.5 else mutate(rng, row, rounds=2)

    rows = [vary(row) for row in rows]
    source = work / "people.csv"
    source.write_text(CSV_HEADER + "\n".join(rows) + "\n", encoding="utf-8", errors="surrogatepass")
    config = load_config(path, environ={"NURTURE_SECRET_KEY": SECRET})
    app = App.open(config)
    try:
        before = _store_counts(app)
        written: list[str] = []
        try:
            import_csv(
                app,
                source,
                datetime(2026, 12, 1, 18, 0, tzinfo=UTC),
                skip_invalid=rng.random() < 0.5,
            )
        except NurtureError:
            if _store_counts(app) != before:
                written.append("the store changed although the import was refused")
    finally:
        app.close()
    # The owner's own error messages may quote a bad row back; the log must not.
    return Outcome(written=written, leaked=leaks(LOG.lines, [SECRET, PERSON]))


def respell(rng: random.Random, token: str) -> str:
    body, _, mac = token.partition(".")
    choice = rng.random()
    if choice < 0.2:
        return token + "=" * rng.randint(1, 3)
    if choice < 0.35:
        return token.replace("-", "+").replace("_", "/")
    if choice < 0.55:
        at = rng.randint(0, len(token))
        return (
            token[:at]
            + rng.choice(["*", "^", "\t", " ", "\x0b", "\u2003", "%0B", "=", ".", "\n", "\x00"])
            + token[at:]
        )
    if choice < 0.75 and mac:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        return f"{body}.{mac[:-1]}{rng.choice(alphabet)}"  # often only the spare bits differ
    return mutate(rng, token, rounds=2)


@surface("tokens")
def tokens_surface(rng: random.Random, work: Path) -> Outcome:
    subscriber_id = rng.randint(1, 2**40)
    if rng.random() < 0.5:
        token = tokens.make_unsubscribe_token(SECRET, subscriber_id, "kap-intro")
        read: Callable[[str], object] = partial(tokens.read_unsubscribe_token, SECRET)
    else:
        token = tokens.make_confirm_token(SECRET, subscriber_id, rng.randint(1, 99), NOW)
        read = partial(tokens.read_confirm_token, SECRET, now=NOW)
    spelling = (
        respell(rng, token)
        if rng.random() < 0.9
        else base64.urlsafe_b64encode(rng.randbytes(rng.randint(0, 64))).decode()
    )
    messages: list[str] = []
    forged = False
    try:
        read(spelling)
        forged = spelling != token
    except NurtureError as exc:
        messages.append(str(exc))
    return Outcome(
        forged=forged,
        leaked=leaks(
            messages + LOG.lines, [SECRET, token, spelling] if len(spelling) > 8 else [SECRET, token]
        ),
    )


# -- running ---------------------------------------------------------------------------------


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


LOG = _Capture()


class Hang(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang()


def run(names: list[str], inputs: int, seed: int, timeout: float, keep: Path | None) -> dict[str, Tally]:
    logging.getLogger().addHandler(LOG)
    logging.getLogger().setLevel(logging.DEBUG)
    signal.signal(signal.SIGALRM, _alarm)
    tallies = {name: Tally() for name in names}
    with tempfile.TemporaryDirectory(prefix="nurture-fuzz-") as scratch:
        for number in range(inputs):
            name = names[number % len(names)]
            tally = tallies[name]
            rng = random.Random(f"{seed}/{number}")
            LOG.lines.clear()
            tally.inputs += 1
            problem = None
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                outcome = SURFACES[name](rng, Path(scratch) / "project")
            except Hang:
                tally.hangs += 1
                problem = "hang"
                outcome = Outcome()
            except BaseException as exc:  # noqa: BLE001 - counting them is the point
                if isinstance(exc, KeyboardInterrupt):
                    raise
                tally.tracebacks += 1
                problem = "".join(traceback.format_exception(exc))
                outcome = Outcome()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if outcome.written:
                tally.partial_writes += 1
                problem = f"wrote {outcome.written}"
            if outcome.leaked:
                tally.log_leaks += 1
                problem = "leaked a secret, token or address"
            if outcome.forged:
                tally.forgeries += 1
                problem = "a non-canonical token verified"
            if problem and keep is not None:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{name}-{number}.txt").write_text(
                    f"seed {seed}, input {number}\n{problem}\n", encoding="utf-8", errors="replace"
                )
    return tallies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--inputs", type=int, default=2000, help="inputs in all, shared round-robin by the surfaces"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds before an input counts as a hang"
    )
    parser.add_argument(
        "--surface", action="append", choices=sorted(SURFACES), help="only these (repeatable)"
    )
    parser.add_argument("--keep", type=Path, help="write a note per failing input here")
    parser.add_argument(
        "--memory-gib", type=float, default=4.0, help="address-space cap, so a bomb fails instead of swapping"
    )
    args = parser.parse_args()
    cap = int(args.memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    names = args.surface or sorted(SURFACES)
    started = time.monotonic()
    tallies = run(names, args.inputs, args.seed, args.timeout, args.keep)
    print(
        f"{'surface':<10} {'inputs':>7} {'tracebacks':>10} {'hangs':>6} "
        f"{'partial writes':>14} {'log leaks':>9} {'forgeries':>9}"
    )
    for name, t in tallies.items():
        print(
            f"{name:<10} {t.inputs:>7} {t.tracebacks:>10} {t.hangs:>6} "
            f"{t.partial_writes:>14} {t.log_leaks:>9} {t.forgeries:>9}"
        )
    print(f"(the web surfaces, {ELSEWHERE})")
    print(f"seed {args.seed}, {time.monotonic() - started:.0f} s")
    bad = sum(t.tracebacks + t.hangs + t.partial_writes + t.log_leaks + t.forgeries for t in tallies.values())
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.pop("NURTURE_CONFIG", None)
    sys.exit(main())
