"""What every command needs, built once: config, store engine, transport, content.

`App.config` is the configuration in effect: config.yaml and the environment with the
settings the owner saved in the console laid over them (nurture.config.overrides).
`refresh_settings` reads the saved ones again; the sending pass calls it before each
pass and `nurture serve` every few seconds, so a change made in the console reaches
every process without any caller having to know where a value came from.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Connection, Engine

from nurture.config import Config
from nurture.config.overrides import SettingProblem, apply_saved
from nurture.content.campaigns import Campaign
from nurture.content.rendering import Renderer
from nurture.providers.base import Transport
from nurture.providers.outbox import OutboxTransport
from nurture.series.catalog import SeriesCatalog
from nurture.store.db import make_engine
from nurture.store.migrate import ensure_schema
from nurture.store.saved_settings import Saved, read_saved

log = logging.getLogger(__name__)


@dataclass
class App:
    config: Config
    engine: Engine | Connection
    _transport: Transport | None = field(default=None, repr=False)
    # config.yaml and the environment alone (None: `config` is that, nothing saved applied).
    file_config: Config | None = field(default=None, repr=False)
    # Saved settings not in use, and why (nurture.config.overrides).
    settings_problems: list[SettingProblem] = field(default_factory=list, repr=False)
    _saved: dict[str, Saved] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, config: Config, *, migrate: bool = True) -> App:
        try:
            engine = make_engine(config.database_url)
        except OSError as exc:  # the folder of a SQLite file could not be created
            raise config.database_folder_error(exc) from None
        if migrate:
            ensure_schema(engine, secret_keys=config.secrets.store_keys())
        app = cls(config=config, engine=engine)
        app.refresh_settings()
        # Read (and, for a series used for the first time, create) the published versions
        # now, before any command opens a write transaction that would need them: on
        # SQLite a second writer inside one would wait for itself.
        app.catalog.refresh(engine)
        return app

    def refresh_settings(self) -> bool:
        """Apply the settings saved in the console as the store has them now. True if they changed.

        A saved value that cannot be used falls back to config.yaml's, and is named in
        `settings_problems` and the log (by key only: a value may be an address)."""
        saved = read_saved(self.engine)
        if saved == self._saved:
            return False
        base = self.file_config or self.config
        applied = apply_saved(base, {key: item.value for key, item in saved.items()})
        self.file_config = base
        self._saved = saved
        self.config = applied.config
        self.settings_problems = applied.problems
        # Built from the config: the sender and postal address are in every email.
        self.__dict__.pop("renderer", None)
        for problem in applied.problems:
            log.warning("the saved setting %s is not used; config.yaml's value is used instead", problem.key)
        return True

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            self._transport = make_transport(
                self.config, self.engine if isinstance(self.engine, Engine) else None
            )
        return self._transport

    def use_transport(self, transport: Transport) -> None:
        self._transport = transport

    @cached_property
    def renderer(self) -> Renderer:
        return Renderer(self.config)

    @cached_property
    def catalog(self) -> SeriesCatalog:
        return SeriesCatalog(self.config.campaigns_dir)

    @property
    def campaigns(self) -> dict[str, Campaign]:
        """The latest published version of every series: what is sent, never the files being edited.

        Loaded once; each sending pass refreshes it (`catalog.refresh`). A series
        folder never published becomes version 1 the first time it is read here.
        """
        return self.catalog.current(self.engine)

    @contextmanager
    def rehearsal(self, transport: Transport) -> Iterator[App]:
        """An App whose every write is rolled back at the end, with its own transport.

        `simulate` and `send-due --dry-run` run the real pass inside it, so what they
        show is exactly what would happen, and nothing changes or leaves the machine.
        """
        assert isinstance(self.engine, Engine)
        with self.engine.connect() as connection:
            outer = connection.begin()
            try:
                rehearsal = App(
                    config=self.config, engine=connection, _transport=transport, file_config=self.file_config
                )
                rehearsal._saved = self._saved
                rehearsal.__dict__["renderer"] = self.renderer
                # Its own catalog: a version 1 created inside the rehearsal is rolled back with it.
                rehearsal.catalog.refresh(connection)
                yield rehearsal
            finally:
                outer.rollback()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if isinstance(self.engine, Engine):
            self.engine.dispose()


def make_transport(config: Config, engine: Engine | None = None) -> Transport:
    """The configured transport; `engine`, when given, shares a provider's rate across workers."""
    if config.delivery.transport == "sendgrid":
        # Deferred, a heavy import: the sendgrid package (~50 ms), for the stores that use it only.
        from nurture.providers.rate_limit import SharedPause
        from nurture.providers.sendgrid.transport import SendGridTransport

        return SendGridTransport(
            config.secrets.require_sendgrid_key(),
            host=config.secrets.sendgrid_host,
            timeout=config.delivery.request_timeout,
            sandbox_mode=config.delivery.sandbox_mode,
            tracking=config.delivery.tracking,
            # A 429's reset holds every worker on the store, not only the one that heard it.
            pause=SharedPause(engine, "sendgrid") if engine is not None else None,
        )
    if config.delivery.transport == "ses":
        # Deferred, heavy imports (boto3), for the stores that use them only.
        from nurture.providers.rate_limit import SharedSchedule
        from nurture.providers.ses.transport import SesTransport

        assert config.ses.region and config.ses.configuration_set  # checked when the config was read
        store = engine
        return SesTransport(
            region=config.ses.region,
            configuration_set=config.ses.configuration_set,
            timeout=config.delivery.request_timeout,
            workers=config.delivery.concurrency * 4,
            # Every worker on the store shares the account's MaxSendRate (SES counts it per account).
            pacer=(lambda rate: SharedSchedule(store, "ses", rate)) if store is not None else None,
        )
    if config.delivery.transport == "smtp":
        from nurture.providers.smtp.transport import SmtpTransport

        return SmtpTransport.from_config(config)
    return OutboxTransport(config.prepare_outbox_dir())
