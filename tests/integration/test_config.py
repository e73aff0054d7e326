"""config.yaml: every kind of mistake gives one message naming the file, the key and the problem.

The config files here are written out line by line, so each test knows the exact
line a mistake sits on and can check the message points there.
"""

from __future__ import annotations

from datetime import time

import pytest

from nurture.config import load_config
from nurture.errors import ConfigError
from tests.support.config_files import VALID, config_error, edited, line_of, project
from tests.support.factories import SECRET
from tests.support.processes import clean_env, run_nurture

# ---------------------------------------------------------------- a good file


def test_valid_file_loads_with_its_values_and_defaults(tmp_path):
    path = project(tmp_path)
    config = load_config(path, environ={"NURTURE_SECRET_KEY": SECRET})
    assert config.path == path
    assert config.practice.name == "Riverbend Integrative Therapy"
    assert config.practice.website == "https://www.example.com/articles"
    assert config.sender.from_email == "hello@example.com"
    assert config.delivery.transport == "outbox"
    assert config.delivery.batch_size == 500
    assert config.delivery.send_window.start == time(9, 0)
    assert config.delivery.send_window.end == time(17, 0)
    assert config.delivery.default_timezone == "America/Los_Angeles"
    assert config.delivery.max_emails_per_day == 1  # default
    assert config.web.port == 8000  # default
    assert config.consent.version == "v1"
    # Relative paths are relative to the config file, not the working directory.
    assert config.database_url == f"sqlite:///{tmp_path.resolve() / 'nurture.db'}"
    assert config.outbox_dir == tmp_path.resolve() / "outbox"
    assert config.secrets.secret_key == SECRET
    assert config.secrets.sendgrid_api_key is None


def test_batch_size_of_exactly_1000_is_allowed(tmp_path):
    text, _ = edited("  batch_size: 500", "  batch_size: 1000")
    assert load_config(project(tmp_path, text), environ={}).delivery.batch_size == 1000


# ---------------------------------------------------------------- the file itself


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere" / "config.yaml"
    message = config_error(path)
    assert str(path) in message
    assert "config file not found" in message
    assert "NURTURE_CONFIG" in message  # says what to do


def test_missing_file_named_by_nurture_config(tmp_path):
    missing = tmp_path / "other.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"NURTURE_CONFIG": str(missing)})
    assert str(missing) in str(caught.value)
    assert "not found" in str(caught.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    text, line = edited("  from_name: Riverbend Integrative Therapy", "  from_name: Riverbend: Integrative")
    path = project(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"{path}, line {line}: YAML syntax error")
    assert "mapping values are not allowed" in message
    assert "\n" not in message


def test_yaml_syntax_error_unclosed_quote(tmp_path):
    text, line = edited('    start: "09:00"', '    start: "09:00')
    path = project(tmp_path, text)
    message = config_error(path)
    assert str(path) in message
    assert "YAML syntax error" in message
    assert "line " in message


def test_top_level_must_be_a_mapping(tmp_path):
    path = project(tmp_path, "- just\n- a list\n")
    message = config_error(path)
    assert str(path) in message
    assert "top level must be a mapping" in message


def test_empty_file_reports_the_missing_sections(tmp_path):
    path = project(tmp_path, "")
    message = config_error(path)
    for key in ("practice", "sender", "consent"):
        assert f"{path}: {key}: required key is missing" in message.splitlines()


# ---------------------------------------------------------------- keys and values


def test_unknown_key_names_file_line_and_key(tmp_path):
    text, line = edited("  batch_size: 500", "  batchsize: 500")
    path = project(tmp_path, text)
    message = config_error(path)
    assert message == (
        f"{path}, line {line}: delivery.batchsize: unknown key; "
        "check the spelling against the example config.yaml"
    )


def test_unknown_section(tmp_path):
    text = VALID + "mailing:\n  enabled: true\n"
    path = project(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"{path}, line {line_of(text, 'mailing:')}: mailing: unknown key")


def test_secret_in_the_file_is_refused_as_unknown_key(tmp_path):
    text = VALID + "secret_key: hunter2hunter2hunter2\n"
    path = project(tmp_path, text)
    message = config_error(path)
    assert f"line {line_of(text, 'secret_key')}: secret_key: unknown key" in message


def test_missing_required_key(tmp_path):
    text = VALID.replace("  name: Riverbend Integrative Therapy\n", "")
    path = project(tmp_path, text)
    message = config_error(path)
    assert message == f"{path}, line {line_of(text, 'practice:')}: practice.name: required key is missing"


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        ("  batch_size: 500", "  batch_size: lots", "delivery.batch_size", "valid integer"),
        ("  weekdays_only: false", "  weekdays_only: maybe", "delivery.weekdays_only", "valid boolean"),
        (
            "  transport: outbox",
            "  transport: mailgun",
            "delivery.transport",
            "'outbox', 'sendgrid', 'ses' or 'smtp'",
        ),
        ('    start: "09:00"', '    start: "nine"', "delivery.send_window.start", "not a time of day"),
        (
            "  website: https://www.example.com/articles",
            "  website: [a, b]",
            "practice.website",
            "valid string",
        ),
    ],
)
def test_wrong_type_names_file_line_key_and_value(tmp_path, old, new, key, problem):
    text, line = edited(old, new)
    path = project(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"{path}, line {line}: {key}: ")
    assert problem in message
    assert "\n" not in message


def test_wrong_type_shows_the_value_given(tmp_path):
    text, _ = edited("  batch_size: 500", "  batch_size: lots")
    assert "(got 'lots')" in config_error(project(tmp_path, text))


def test_unknown_time_zone(tmp_path):
    text, line = edited("  default_timezone: America/Los_Angeles", "  default_timezone: Mars/Olympus_Mons")
    path = project(tmp_path, text)
    message = config_error(path)
    assert message.startswith(f"{path}, line {line}: delivery.default_timezone: ")
    assert "'Mars/Olympus_Mons' is not an IANA time zone" in message


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("  from_email: hello@example.com", "  from_email: hello.example.com", "sender.from_email"),
        ("  reply_to: hello@example.com", "  reply_to: hello@", "practice.reply_to"),
    ],
)
def test_invalid_address(tmp_path, old, new, key):
    text, line = edited(old, new)
    path = project(tmp_path, text)
    message = config_error(path)
    value = new.split(": ", 1)[1]
    assert message.startswith(f"{path}, line {line}: {key}: {value!r} is not a valid email address")


def test_http_website_is_refused(tmp_path):
    text, line = edited("  website: https://www.example.com/articles", "  website: http://www.example.com")
    path = project(tmp_path, text)
    assert config_error(path).startswith(
        f"{path}, line {line}: practice.website: 'http://www.example.com' must be an https:// URL"
    )


@pytest.mark.parametrize("size", [1001, 5000])
def test_batch_size_over_1000(tmp_path, size):
    text, line = edited("  batch_size: 500", f"  batch_size: {size}")
    path = project(tmp_path, text)
    message = config_error(path)
    assert message == (
        f"{path}, line {line}: delivery.batch_size: Input should be less than or equal to 1000 (got {size})"
    )


def test_batch_size_zero(tmp_path):
    text, line = edited("  batch_size: 500", "  batch_size: 0")
    message = config_error(project(tmp_path, text))
    assert f"line {line}: delivery.batch_size: Input should be greater than or equal to 1" in message


@pytest.mark.parametrize(("start", "end"), [("17:00", "09:00"), ("09:00", "09:00")])
def test_send_window_end_not_after_start(tmp_path, start, end):
    text = VALID.replace('start: "09:00"', f'start: "{start}"').replace('end: "17:00"', f'end: "{end}"')
    path = project(tmp_path, text)
    message = config_error(path)
    assert message == (
        f"{path}, line {line_of(text, 'send_window:')}: delivery.send_window: "
        f"end ({end}) must be later than start ({start})"
    )


def test_several_problems_are_each_reported_on_their_own_line(tmp_path):
    text = VALID.replace("  batch_size: 500", "  batch_size: 5000").replace(
        "  default_timezone: America/Los_Angeles", "  default_timezone: Nowhere/Land"
    )
    path = project(tmp_path, text)
    lines = config_error(path).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}, line {line_of(text, 'batch_size')}: delivery.batch_size:")
    assert lines[1].startswith(
        f"{path}, line {line_of(text, 'default_timezone')}: delivery.default_timezone:"
    )


# ---------------------------------------------------------------- the environment


def test_env_override_transport(tmp_path):
    config = load_config(
        project(tmp_path),
        environ={"NURTURE_DELIVERY__TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.test-key"},
    )
    assert config.delivery.transport == "sendgrid"
    assert config.secrets.sendgrid_api_key == "SG.test-key"


def test_env_override_batch_size_is_typed(tmp_path):
    config = load_config(project(tmp_path), environ={"NURTURE_DELIVERY__BATCH_SIZE": "250"})
    assert config.delivery.batch_size == 250


def test_env_override_nested_key(tmp_path):
    config = load_config(project(tmp_path), environ={"NURTURE_DELIVERY__SEND_WINDOW__START": "08:30"})
    assert config.delivery.send_window.start == time(8, 30)
    assert config.delivery.send_window.end == time(17, 0)  # the file's value stays


def test_bad_env_override_names_the_variable_not_the_file(tmp_path):
    path = project(tmp_path)
    message = config_error(path, {"NURTURE_DELIVERY__BATCH_SIZE": "2000"})
    assert message == (
        "environment variable NURTURE_DELIVERY__BATCH_SIZE: delivery.batch_size: "
        "Input should be less than or equal to 1000 (got 2000)"
    )
    message = config_error(path, {"NURTURE_DELIVERY__TRANSPORT": "carrier-pigeon"})
    assert message.startswith("environment variable NURTURE_DELIVERY__TRANSPORT: delivery.transport: ")
    assert "'carrier-pigeon'" in message


def test_env_override_of_unknown_key(tmp_path):
    message = config_error(project(tmp_path), {"NURTURE_DELIVERY__BATCHSIZE": "10"})
    assert message.startswith(
        "environment variable NURTURE_DELIVERY__BATCHSIZE: delivery.batchsize: unknown key"
    )


def test_nurture_config_names_the_file(tmp_path):
    other = project(tmp_path, VALID.replace("  batch_size: 500", "  batch_size: 42"), name="other.yaml")
    project(tmp_path)  # a config.yaml beside it that must not be read
    config = load_config(None, environ={"NURTURE_CONFIG": str(other)})
    assert config.path == other
    assert config.delivery.batch_size == 42


def test_nurture_config_error_names_that_file(tmp_path):
    other = project(tmp_path, VALID.replace("  batch_size: 500", "  batch_size: 4000"), name="other.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(None, environ={"NURTURE_CONFIG": str(other)})
    assert str(caught.value).startswith(f"{other}, line {line_of(VALID, 'batch_size')}: delivery.batch_size:")


def test_nurture_database_url_overrides_the_file(tmp_path):
    url = "postgresql+psycopg://nurture@db.internal/nurture"
    config = load_config(project(tmp_path), environ={"NURTURE_DATABASE_URL": url})
    assert config.database_url == url
    # ... and wins over NURTURE_DATABASE__URL too.
    config = load_config(
        project(tmp_path),
        environ={"NURTURE_DATABASE_URL": url, "NURTURE_DATABASE__URL": "sqlite:///other.db"},
    )
    assert config.database_url == url


def test_sendgrid_without_api_key(tmp_path):
    text, line = edited("  transport: outbox", "  transport: sendgrid")
    path = project(tmp_path, text)
    message = config_error(path)
    assert message.startswith(
        f"{path}, line {line}: delivery.transport is 'sendgrid' but SENDGRID_API_KEY is not set: "
    )
    assert "\n" not in message
    # An empty variable counts as not set.
    assert "SENDGRID_API_KEY is not set" in config_error(path, {"SENDGRID_API_KEY": ""})


def test_sendgrid_from_env_without_api_key(tmp_path):
    message = config_error(project(tmp_path), {"NURTURE_DELIVERY__TRANSPORT": "sendgrid"})
    assert message.startswith(
        "environment variable NURTURE_DELIVERY__TRANSPORT: "
        "delivery.transport is 'sendgrid' but SENDGRID_API_KEY is not set"
    )


def test_secret_key_is_only_required_when_used(tmp_path):
    config = load_config(project(tmp_path), environ={})
    with pytest.raises(ConfigError, match="NURTURE_SECRET_KEY is not set"):
        config.secrets.require_secret_key()
    short = load_config(project(tmp_path), environ={"NURTURE_SECRET_KEY": "short"})
    with pytest.raises(ConfigError, match="too short"):
        short.secrets.require_secret_key()


# ---------------------------------------------------------------- the real command


BROKEN = {
    "batch_size": (
        ("  batch_size: 500", "  batch_size: 5000"),
        "delivery.batch_size: Input should be less than or equal to 1000",
    ),
    "unknown_key": (("  batch_size: 500", "  batchsize: 500"), "delivery.batchsize: unknown key"),
    "time_zone": (
        ("  default_timezone: America/Los_Angeles", "  default_timezone: Mars/Base"),
        "is not an IANA time zone",
    ),
    "address": (
        ("  from_email: hello@example.com", "  from_email: nobody"),
        "sender.from_email: 'nobody' is not a valid email",
    ),
    "yaml": (("  from_name: Riverbend Integrative Therapy", "  from_name: a: b"), "YAML syntax error"),
    "sendgrid_key": (
        ("  transport: outbox", "  transport: sendgrid"),
        "delivery.transport is 'sendgrid' but SENDGRID_API_KEY is not set",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_cli_broken_config_exits_2_with_one_clear_line(tmp_path, case):
    (old, new), problem = BROKEN[case]
    text, line = edited(old, new)
    project(tmp_path, text)
    result = run_nurture(tmp_path, "subscribe", "sam@example.com")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: config.yaml, line {line}: ")
    assert problem in lines[0]
    assert not (tmp_path / "nurture.db").exists()  # nothing was created
    assert not (tmp_path / "outbox").exists()


def test_cli_missing_config_exits_2(tmp_path):
    result = run_nurture(tmp_path, "subscribers", "list")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: config.yaml: config file not found. Run nurture from the project folder, "
        "or point NURTURE_CONFIG at your config.yaml."
    ]


def test_cli_bad_env_override_exits_2(tmp_path):
    project(tmp_path)
    result = run_nurture(tmp_path, "subscribers", "list", env=clean_env(NURTURE_DELIVERY__BATCH_SIZE="2000"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: environment variable NURTURE_DELIVERY__BATCH_SIZE: delivery.batch_size: "
        "Input should be less than or equal to 1000 (got 2000)"
    ]


def test_cli_config_option_and_nurture_config(tmp_path):
    project(tmp_path, VALID.replace("  batch_size: 500", "  batch_size: 2000"), name="broken.yaml")
    project(tmp_path)  # a good ./config.yaml
    by_option = run_nurture(tmp_path, "--config", "broken.yaml", "subscribers", "list")
    by_env = run_nurture(tmp_path, "subscribers", "list", env=clean_env(NURTURE_CONFIG="broken.yaml"))
    for result in (by_option, by_env):
        assert result.returncode == 2
        assert result.stderr.startswith(
            f"error: broken.yaml, line {line_of(VALID, 'batch_size')}: delivery.batch_size:"
        )
        assert "Traceback" not in result.stderr
    good = run_nurture(tmp_path, "subscribers", "list")
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().endswith("0 subscriber(s)")
