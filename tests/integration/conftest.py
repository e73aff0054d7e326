"""Fixtures of the integration tests: a project copied into tmp_path and its App, the stores
a test may run on, and the SendGrid stand-in.

A module changes what `app` opens by overriding a fixture it builds on:
`app_settings` (dotted config overrides) or `database_url` (`both_stores`, `postgres_url`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nurture.app import App
from nurture.config import Config
from tests.support.aws import AWS_TEST_ENV, MotoServer
from tests.support.factories import make_app, make_config
from tests.support.sendgrid_standin import SendGridStandIn
from tests.support.ses_standin import SesStandIn

STANDIN_KEY = "SG.test"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """The config of a project in tmp_path: campaigns/ and templates/ are copies, safe to break."""
    return make_config(tmp_path)


@pytest.fixture
def app_settings() -> dict[str, object]:
    """Dotted config overrides for `app` (`{"delivery.tracking": "per_person"}`); none by default."""
    return {}


@pytest.fixture
def database_url() -> str | None:
    """The store `app` opens; None: the project's SQLite file in tmp_path."""
    return None


@pytest.fixture
def app(tmp_path: Path, database_url: str | None, app_settings: dict[str, object]) -> App:
    """A project in tmp_path, opened (closed after the test by the root conftest)."""
    app = make_app(tmp_path, database_url=database_url, **app_settings)
    if database_url is not None and database_url.startswith("postgresql"):
        assert app.engine.dialect.name == "postgresql"
    return app


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def both_stores(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL: a SQLite file in tmp_path, then a fresh PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'nurture.db'}"


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[SendGridStandIn]:
    """The SendGrid stand-in (a real HTTP server on 127.0.0.1) taking the key STANDIN_KEY,
    with no proxy between it and this process."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with SendGridStandIn(api_key=STANDIN_KEY) as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Test AWS credentials in the environment (boto3's standard chain), no profile files,
    no instance metadata lookups, no proxy."""
    env = {
        **AWS_TEST_ENV,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SESV2",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_SNS",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return env


@pytest.fixture
def ses(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[SesStandIn]:
    """The SES v2 stand-in, with boto3's sesv2 client pointed at it (AWS_ENDPOINT_URL_SESV2)."""
    with SesStandIn() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SESV2", server.url)
        yield server


@pytest.fixture
def moto(aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """moto in server mode (SNS and SQS over real HTTP), with boto3's sqs and sns clients pointed at it."""
    with MotoServer() as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", server.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SNS", server.url)
        yield server
