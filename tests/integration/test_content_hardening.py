"""Issue 10 for campaign and newsletter files: every hostile or mistaken text is one
ContentError naming file:line (never a traceback or a hang), and `check` says plainly
what it did not check."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nurture.content.campaigns import (
    BodyEnvironment,
    EmailSource,
    FrontMatter,
    key_name,
    load_campaign,
    load_email,
)
from nurture.content.checks import check_content
from nurture.content.rendering import Renderer
from nurture.errors import ContentError
from tests.support.content_files import assert_finding, write_step
from tests.support.csv_files import write_csv
from tests.support.factories import SECRET, make_config, write_project
from tests.support.processes import run_nurture

BODY_LINE = 6  # write_step: ---, subject, preheader, article, ---, then the body


def prepare_error(config, path: Path) -> str:
    campaign = load_campaign(path.parent)
    with pytest.raises(ContentError) as caught:
        Renderer(config).prepare_step(campaign, campaign.steps[0])
    return str(caught.value)


# -- (8) content tracebacks -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "{{ 1/0 }}",
        '{% include "footer.html" %}',
        '{% import "macros.html" as m %}',
        '{% extends "layout.html" %}',
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ range(10**9) | list }}",
        '{{ "a" * 10**9 }}',
        "{% for i in range(3) %}x{% endfor %}",
        "{{ practice_name | upper }}",
        "{% set x = 1 %}",
    ],
)
def test_anything_but_a_placeholder_in_the_text_is_refused_with_its_line(config, text):
    path = write_step(config, f"First line.\n\nSecond.\n{text}\n")
    started = time.monotonic()
    message = prepare_error(config, path)
    assert time.monotonic() - started < 5
    assert message.startswith(f"{path}:{BODY_LINE + 3}: ")
    assert "practice_name" in message


def test_a_2000_deep_expression_in_the_text_is_refused(config):
    path = write_step(config, "Intro.\n{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}\n")
    assert prepare_error(config, path).startswith(f"{path}:")


def test_the_documented_placeholder_still_works_and_raw_text_stays_text(config):
    path = write_step(config, "Welcome from {{ practice_name }}.\n\n{% raw %}[literal]{% endraw %}\n")
    campaign = load_campaign(path.parent)
    prepared = Renderer(config).prepare_step(campaign, campaign.steps[0])
    assert f"Welcome from {config.practice.name}." in prepared.text_template


def test_a_2000_deep_subject_is_refused_with_its_line(config):
    path = write_step(config, "Body.\n", subject="[" * 2000 + "]" * 2000)
    with pytest.raises(ContentError, match=rf"^{path}:2: nested more than"):
        load_email(path)


@pytest.mark.parametrize("name", ["x" * 303 + ".md", "a/" * 150 + "b.md", "/etc/passwd", "../other/01.md"])
def test_a_bad_step_file_name_is_refused_with_its_line(config, name):
    path = write_step(config, "Body.\n")
    spec = path.parent / "campaign.yaml"
    spec.write_text(f"title: T\nsteps:\n  - file: {name}\n    delay_days: 1\n", encoding="utf-8")
    with pytest.raises(ContentError, match=rf"^{spec}:3: steps\[1\]\.file: "):
        load_campaign(path.parent)


# -- (7) anchors and aliases in owner files ---------------------------------------------------------


BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def test_an_alias_bomb_in_campaign_yaml_is_refused_at_once(config):
    path = write_step(config, "Body.\n")
    spec = path.parent / "campaign.yaml"
    spec.write_text(spec.read_text() + BOMB, encoding="utf-8")
    started = time.monotonic()
    report = check_content(config)
    assert time.monotonic() - started < 30
    assert_finding(report.findings, spec, 5, "anchors and aliases")


def test_an_alias_in_front_matter_is_refused_with_its_line(config):
    path = write_step(config, "Body.\n", subject="&s Hello", preheader="*s")
    with pytest.raises(ContentError, match=rf"^{path}:2: anchors and aliases"):
        load_email(path)


# -- check's own messages ---------------------------------------------------------------------


def test_steps_are_numbered_from_1_in_every_message(config):
    path = write_step(config, "Body.\n")
    spec = path.parent / "campaign.yaml"
    spec.write_text(
        "title: T\nsteps:\n"
        "  - file: 01-broken.md\n    delay_days: -1\n"
        "  - file: nowhere.md\n    delay_days: 1\n"
    )
    with pytest.raises(ContentError, match=r"steps\[1\]\.delay_days"):
        load_campaign(path.parent)
    spec.write_text(
        "title: T\nsteps:\n"
        "  - file: 01-broken.md\n    delay_days: 1\n"
        "  - file: nowhere.md\n    delay_days: 1\n"
    )
    with pytest.raises(ContentError, match=r":5: steps\[2\]\.file: nowhere\.md does not exist"):
        load_campaign(path.parent)
    assert key_name(("steps", 0, "file")) == "steps[1].file"


def test_a_series_that_did_not_load_is_reported_as_not_checked(config):
    path = write_step(config, "Body.\n")
    (path.parent / "campaign.yaml").write_text("title: [unclosed\n", encoding="utf-8")
    report = check_content(config)
    assert report.exit_code == 1
    assert "not checked: the series broken" in report.summary()


def test_a_yaml_syntax_error_in_front_matter_names_the_line_of_the_open_quote(config):
    path = write_step(config, "Body.\n", subject='"Hello there', preheader="x", article="y")
    with pytest.raises(ContentError, match=rf"^{path}:2: YAML syntax error: the quoted value"):
        load_email(path)


def test_at_in_words_is_explained_without_pydantic(tmp_path):
    config = make_config(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "nurture",
            "--config",
            str(config.path),
            "newsletter",
            "schedule",
            str(config.campaigns_dir / "newsletters" / "2026-12-winter-note.md"),
            "--at",
            "9am",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "NURTURE_SECRET_KEY": SECRET},
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: --at '9am': use YYYY-MM-DD HH:MM, for example")
    assert "pydantic" not in result.stderr and "validation error" not in result.stderr


# -- properties ------------------------------------------------------------------------------------

JINJA_BITS = st.sampled_from(
    [
        "{{",
        "}}",
        "{%",
        "%}",
        "{#",
        "#}",
        "[[",
        "]]",
        "practice_name",
        "(",
        ")",
        "|",
        "1/0",
        "'",
        '"',
        "\n",
        "-",
        " ",
        "x",
        "include",
        "macro",
        "raw",
        "endraw",
    ]
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(parts=st.lists(st.one_of(JINJA_BITS, st.text(max_size=8)), max_size=40))
def test_any_body_renders_or_is_one_content_error_with_a_line(config, parts):
    body = "".join(parts) + "\n"
    source = EmailSource(
        path=config.campaigns_dir / "x.md",
        front=FrontMatter(subject="S", preheader="P"),
        body=body,
        body_line=5,
    )
    renderer = Renderer(config)
    try:
        renderer.prepare_newsletter(source, "fuzz")
    except ContentError as exc:
        assert str(exc).startswith(f"{source.path}:") or str(exc).startswith(str(config.templates_dir))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(front=st.text(max_size=300))
def test_any_front_matter_loads_or_is_one_content_error_naming_the_file(tmp_path, front):
    path = tmp_path / "n.md"
    path.write_text(f"---\n{front}\n---\nBody.\n", encoding="utf-8", errors="surrogatepass")
    try:
        load_email(path)
    except ContentError as exc:
        assert str(exc).startswith(str(path))


@given(st.text(max_size=60))
def test_the_body_environment_accepts_only_text_and_names(text):
    env = BodyEnvironment()
    try:
        template = env.from_string(text)
    except Exception as exc:  # noqa: BLE001 - the property: only Jinja's own syntax error comes out
        assert type(exc).__name__ == "TemplateSyntaxError", repr(exc)
        return
    try:
        template.render(practice_name="P")
    except Exception as exc:  # noqa: BLE001 - the property: only Jinja's own undefined error comes out
        assert type(exc).__name__ == "UndefinedError", repr(exc)


def test_an_import_of_one_row_says_1_row(tmp_path):
    write_project(tmp_path)
    write_csv(tmp_path / "one.csv", [["one@example.com", "One", "", "2025-01-01", "form"]])
    result = run_nurture(tmp_path, "import", "one.csv", "--now", "2026-12-01T18:00:00Z")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 row: 1 added"), result.stdout
