"""The fault campaign of issue 21, short: a few seeded trials per database (the long run is
`python benchmarks/chaos.py --trials 200`, figures in the README). A failing seed is
reproduced with `python benchmarks/chaos.py --seed-from SEED --trials 1 --databases sqlite`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.chaos import run_trial
from tests.support.sendgrid_standin import SendGridStandIn

SEEDS = [3, 11, 26, 14]  # 14 (and 1014): the owner publishes an edit while the workers run


@pytest.mark.parametrize("seed", SEEDS)
def test_chaos_trial_sqlite(tmp_path: Path, standin: SendGridStandIn, seed: int) -> None:
    result = run_trial(seed, tmp_path, f"sqlite:///{tmp_path / 'nurture.db'}", "sqlite", standin)
    assert result.ok, result.line()


@pytest.mark.parametrize("seed", SEEDS)
def test_chaos_trial_postgres(tmp_path: Path, postgres_url: str, standin: SendGridStandIn, seed: int) -> None:
    result = run_trial(1000 + seed, tmp_path, postgres_url, "postgresql", standin)
    assert result.ok, result.line()
