"""Issue 10 for config.yaml and its environment overrides: every mistake is one ConfigError
(exit 2) naming where it is, never a traceback and never a silent reinterpretation."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time as clock
from datetime import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurture.app import App
from nurture.config import load_config
from nurture.errors import ConfigError
from tests.support.config_files import VALID, config_error, edited, line_of, project
from tests.support.factories import SECRET


def window(tmp_path: Path, start: str, end: str = '"17:00"') -> Path:
    text = VALID.replace('start: "09:00"', f"start: {start}").replace('end: "17:00"', f"end: {end}")
    return project(tmp_path, text)


# -- (1) send-window times ------------------------------------------------------------


@pytest.mark.parametrize(
    "written, expected",
    [("9:00", time(9)), ("09:00", time(9)), ('"9:30"', time(9, 30)), ("'09:05'", time(9, 5))],
)
def test_unquoted_or_quoted_clock_times_mean_that_time_of_day(tmp_path, written, expected):
    config = load_config(window(tmp_path, written, "17:00"), environ={"NURTURE_SECRET_KEY": SECRET})
    assert config.delivery.send_window.start == expected
    assert config.delivery.send_window.end == time(17)


@pytest.mark.parametrize(
    "written", ["540", "25:00", "9:60", "9", "nine", "9:00pm", '"09:00+02:00"', "9.5", "[9, 0]"]
)
def test_anything_else_is_refused_naming_the_key_and_line(tmp_path, written):
    path = window(tmp_path, written)
    message = config_error(path)
    line = line_of(path.read_text(), f"start: {written}")
    assert message.startswith(f"{path}, line {line}: delivery.send_window.start: ")
    assert "HH:MM" in message


@pytest.mark.parametrize("value", ["25:00", "540", "24:00", "09:00+02:00", "09:00:30"])
def test_env_override_of_a_window_time_is_a_clear_config_error(tmp_path, value):
    message = config_error(project(tmp_path), {"NURTURE_DELIVERY__SEND_WINDOW__START": value})
    assert message.startswith(
        "environment variable NURTURE_DELIVERY__SEND_WINDOW__START: delivery.send_window.start: "
    )
    assert "naive" not in message and "aware" not in message


def test_one_side_unquoted_still_compares_as_times(tmp_path):
    config = load_config(window(tmp_path, '"09:00"', "18:00"), environ={"NURTURE_SECRET_KEY": SECRET})
    assert (config.delivery.send_window.start, config.delivery.send_window.end) == (time(9), time(18))


# -- (6) config tracebacks ---------------------------------------------------------------


def test_a_2000_deep_flow_list_is_refused_with_its_line(tmp_path):
    text, line = edited("  weekdays_only: false", "  weekdays_only: " + "[" * 2000 + "]" * 2000)
    message = config_error(project(tmp_path, text))
    assert f"line {line}: nested more than" in message


@pytest.mark.parametrize("value", ["/dev/null", "/proc/nope"])
def test_an_unusable_outbox_dir_is_a_config_error_when_used(tmp_path, value):
    config = load_config(
        project(tmp_path), environ={"NURTURE_SECRET_KEY": SECRET, "NURTURE_DELIVERY__OUTBOX_DIR": value}
    )
    with pytest.raises(ConfigError) as caught:
        config.prepare_outbox_dir()
    assert str(caught.value).startswith(
        "environment variable NURTURE_DELIVERY__OUTBOX_DIR: delivery.outbox_dir: "
    )


def test_a_sqlite_file_in_an_impossible_folder_is_a_config_error(tmp_path):
    config = load_config(
        project(tmp_path),
        environ={"NURTURE_SECRET_KEY": SECRET, "NURTURE_DATABASE_URL": "sqlite:////proc/nope/x.db"},
    )
    with pytest.raises(ConfigError) as caught:
        App.open(config)
    assert str(caught.value).startswith("environment variable NURTURE_DATABASE_URL: database.url: ")


@pytest.mark.parametrize("character", ["\x01", "\x1b", "\r", "\n", "\u202e", "\u2028", "\x7f"])
def test_control_characters_in_config_text_are_refused_naming_the_key(tmp_path, character):
    message = config_error(project(tmp_path), {"NURTURE_PRACTICE__NAME": f"x{character}y"})
    assert message.startswith(
        "environment variable NURTURE_PRACTICE__NAME: practice.name: holds the control character U+"
    )


def test_line_breaks_stay_allowed_where_text_spans_lines(tmp_path):
    config = load_config(
        project(tmp_path),
        environ={"NURTURE_SECRET_KEY": SECRET, "NURTURE_PRACTICE__POSTAL_ADDRESS": "1 Main St\nPortland OR"},
    )
    assert config.practice.postal_address == "1 Main St\nPortland OR"


def test_a_control_character_in_the_file_names_its_line(tmp_path):
    text, line = edited("  from_name: Riverbend Integrative Therapy", "  from_name: Riverbend\x02")
    assert config_error(project(tmp_path, text)).startswith(
        f"{tmp_path / 'config.yaml'}, line {line}: the character U+0002"
    )


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"NURTURE_DELIVERY__OUTBOX_DIR": "/dev/null"}, "delivery.outbox_dir"),
        ({"NURTURE_DATABASE_URL": "sqlite:////proc/nope/x.db"}, "database.url"),
        ({"NURTURE_PRACTICE__NAME": "x\x01"}, "practice.name"),
        ({"NURTURE_DELIVERY__SEND_WINDOW__START": "25:00"}, "delivery.send_window.start"),
    ],
)
def test_the_cli_exits_2_with_one_line_and_no_traceback(tmp_path, env, fragment):
    path = project(tmp_path)
    shutil.copytree(Path(__file__).resolve().parents[2] / "templates", tmp_path / "templates")
    result = subprocess.run(
        [sys.executable, "-m", "nurture", "--config", str(path), "subscribe", "sam@example.com"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NURTURE_SECRET_KEY": SECRET, **env},
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr


# -- (7) anchors, aliases and nesting -------------------------------------------------


BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 12))


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = project(tmp_path, VALID + 'l0: &l0 "lol"\n' + BOMB)
    started = clock.monotonic()
    message = config_error(path)
    assert clock.monotonic() - started < 2
    assert f"line {line_of(path.read_text(), 'l0: &l0')}: anchors and aliases" in message


def test_a_merge_key_is_refused(tmp_path):
    text = VALID + "defaults: &d {a: 1}\nweb:\n  <<: *d\n"
    assert "anchors and aliases" in config_error(project(tmp_path, text))


def test_a_key_written_twice_is_refused(tmp_path):
    text = VALID.replace("  batch_size: 500\n", "  batch_size: 500\n  batch_size: 20\n")
    message = config_error(project(tmp_path, text))
    assert (
        f"line {line_of(text, 'batch_size: 20')}: delivery.batch_size is written twice "
        f"(first on line {line_of(text, 'batch_size: 500')})" in message
    )


# -- syntax errors point at the cause ------------------------------------------------------


def test_an_unclosed_quote_is_reported_on_its_own_line(tmp_path):
    text, line = edited("  name: Riverbend Integrative Therapy", '  name: "Riverbend Integrative Therapy')
    message = config_error(project(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'config.yaml'}, line {line}: YAML syntax error: the quoted value")


# -- properties ------------------------------------------------------------------------

KEYS = [
    "NURTURE_PRACTICE__NAME",
    "NURTURE_PRACTICE__WEBSITE",
    "NURTURE_SENDER__FROM_EMAIL",
    "NURTURE_DELIVERY__SEND_WINDOW__START",
    "NURTURE_DELIVERY__SEND_WINDOW__END",
    "NURTURE_DELIVERY__BATCH_SIZE",
    "NURTURE_DELIVERY__OUTBOX_DIR",
    "NURTURE_DELIVERY__DEFAULT_TIMEZONE",
    "NURTURE_DELIVERY__SEND_WINDOW",
    "NURTURE_WEB__PORT",
    "NURTURE_CONSENT__WORDING",
    "NURTURE_DATABASE_URL",
    "NURTURE_NOPE__X",
]
YAMLISH = st.text(alphabet=st.sampled_from(list("&*[]{}:,-'\"!|>%@`#? \n\t09aZ.\\\x01\u2028")), max_size=60)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(key=st.sampled_from(KEYS), value=st.one_of(st.text(max_size=80), YAMLISH))
def test_any_env_override_loads_or_is_one_config_error_naming_the_variable(tmp_path, key, value):
    if "\x00" in value:
        return  # an environment variable cannot hold NUL
    path = project(tmp_path)
    try:
        load_config(path, environ={"NURTURE_SECRET_KEY": SECRET, key: value})
    except ConfigError as exc:
        assert str(exc).startswith(f"environment variable {key}:") or (key == "NURTURE_NOPE__X"), str(exc)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(value=st.one_of(st.text(max_size=80), YAMLISH))
def test_any_value_written_in_the_file_loads_or_is_one_config_error_with_a_line(tmp_path, value):
    text = VALID.replace("  name: Riverbend Integrative Therapy", f"  name: {value}")
    path = project(tmp_path, text)
    try:
        load_config(path, environ={"NURTURE_SECRET_KEY": SECRET})
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}, line ") or str(exc).startswith(f"{path}: "), str(exc)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(hour=st.integers(0, 23), minute=st.integers(0, 59), padded=st.booleans(), quoted=st.booleans())
def test_every_clock_time_means_itself_however_it_is_written(tmp_path, hour, minute, padded, quoted):
    written = f"{hour:02d}:{minute:02d}" if padded else f"{hour}:{minute:02d}"
    if quoted:
        written = f'"{written}"'
    if (hour, minute) == (23, 59):
        return  # end must be later than start
    config = load_config(window(tmp_path, written, '"23:59"'), environ={"NURTURE_SECRET_KEY": SECRET})
    assert config.delivery.send_window.start == time(hour, minute)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.one_of(YAMLISH, st.text(max_size=200)))
def test_any_config_file_loads_or_is_one_config_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path, environ={"NURTURE_SECRET_KEY": SECRET})
    except ConfigError as exc:
        assert str(exc).startswith(str(path)), str(exc)


@pytest.mark.parametrize("value", ["{{ (" * 1000, "[" * 50_000, "[a, " * 20_000])
def test_deep_flow_nesting_is_refused_before_it_costs_time(tmp_path, value):
    started = clock.monotonic()
    message = (
        config_error(project(tmp_path), {"NURTURE_PRACTICE__WEBSITE": value}) if len(value) < 10_000 else None
    )
    path = project(tmp_path, VALID + f"extra: {value}\n")
    file_message = config_error(path)
    assert clock.monotonic() - started < 3
    assert "nested more than" in file_message
    if message is not None:  # an override that is not YAML is taken as text, then validated
        assert message.startswith("environment variable NURTURE_PRACTICE__WEBSITE: practice.website: ")


def test_a_huge_config_file_is_refused_unread(tmp_path):
    path = project(tmp_path, VALID + "extra: [" + "1, " * 40_000 + "]\n")
    assert "the limit is 100,000" in config_error(path)
