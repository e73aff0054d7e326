"""How the outbox writes a batch's files, on both of its paths: a file made without a name
(O_TMPFILE, where the system has it) and the fallback through a temporary name. Either
way an email is whole before it has a name, its claim and its visible name are one
file, a second write of a delivery is refused, and a visible name that fails takes its
claim back with it."""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from nurture.errors import FatalTransportError
from nurture.providers.base import Outcome
from nurture.providers.outbox_files import unnamed_files_work, write_batch
from tests.support.outbox_files import batch_of, files, normalized

PATHS = [pytest.param(True, id="unnamed-file"), pytest.param(False, id="temporary-name")]


def outbox(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    (directory / ".deliveries").mkdir(parents=True)
    return directory


def hidden(directory: Path) -> list[str]:
    return [path.name for path in directory.iterdir() if path.name.startswith(".")]


def claims(directory: Path) -> list[str]:
    return sorted(path.name for path in (directory / ".deliveries").iterdir())


def test_ci_takes_the_unnamed_file_path(tmp_path: Path) -> None:
    # The fallback is tested below either way; this says the default path is the one run.
    if not sys.platform.startswith("linux"):
        pytest.skip("O_TMPFILE is Linux's; elsewhere the outbox always takes the temporary-name path")
    assert unnamed_files_work(tmp_path)


def test_both_paths_write_the_same_files(tmp_path: Path) -> None:
    batch = batch_of(1, 20)
    unnamed, renamed = outbox(tmp_path, "unnamed"), outbox(tmp_path, "renamed")
    write_batch(unnamed, batch, unnamed_files=True)
    write_batch(renamed, batch, unnamed_files=False)
    first, second = files(unnamed), files(renamed)
    assert sorted(first) == sorted(second) and len(first) == 20
    for name, data in first.items():
        assert normalized(data) == normalized(second[name]), name


@pytest.mark.parametrize("unnamed_files", PATHS)
def test_each_email_is_one_file_under_its_claim_and_its_name_and_a_second_write_is_refused(
    tmp_path: Path, unnamed_files: bool
) -> None:
    directory = outbox(tmp_path, "outbox")
    batch = batch_of(1, 12)
    first = write_batch(directory, batch, unnamed_files=unnamed_files)
    assert {o.status for o in first} == {"sent"}
    for name in files(directory):
        delivery = name.rsplit("-", 1)[1]
        visible, claim = (directory / name).stat(), (directory / ".deliveries" / delivery).stat()
        assert (visible.st_ino, visible.st_nlink) == (claim.st_ino, 2), name

    again = write_batch(directory, batch, unnamed_files=unnamed_files)
    assert {o.status for o in again} == {"failed"}
    assert all(f"already holds delivery {o.delivery_id}" in (o.error or "") for o in again)
    assert len(files(directory)) == 12 and len(claims(directory)) == 12
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == [".deliveries"], (
        "no temporary file"
    )


@pytest.mark.parametrize("unnamed_files", PATHS)
def test_a_visible_name_that_fails_takes_its_claim_back(tmp_path: Path, unnamed_files: bool) -> None:
    directory = outbox(tmp_path, "outbox")
    batch = batch_of(1, 3)
    # Something already stands at the second email's visible name.
    blocker = directory / "20261201T150000Z-kap-intro-step2-2.eml"
    blocker.mkdir()
    outcomes = write_batch(directory, batch, unnamed_files=unnamed_files)
    assert [(o.delivery_id, o.status) for o in outcomes] == [("1", "sent"), ("2", "failed"), ("3", "sent")]
    assert "not written" in (outcomes[1].error or "")
    assert claims(directory) == ["1.eml", "3.eml"], "no claim without its email"
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == [".deliveries"], (
        "no temporary file"
    )

    blocker.rmdir()
    retry = write_batch(directory, batch, unnamed_files=unnamed_files)
    assert [(o.delivery_id, o.status) for o in retry] == [("1", "failed"), ("2", "sent"), ("3", "failed")]
    assert len(files(directory)) == 3


@pytest.mark.parametrize("unnamed_files", PATHS)
def test_a_folder_that_refuses_writing_is_fatal_before_anything_is_claimed(
    tmp_path: Path, unnamed_files: bool
) -> None:
    if os.geteuid() == 0:
        # root writes through any mode bits; a missing .deliveries stands in for a broken folder.
        directory = tmp_path / "outbox"
        directory.mkdir()
        with pytest.raises(FatalTransportError, match=f"outbox folder {directory} has no usable .deliveries"):
            write_batch(directory, batch_of(1, 3), unnamed_files=unnamed_files)
        assert list(directory.iterdir()) == []
        return
    directory = outbox(tmp_path, "outbox")
    directory.chmod(0o500)
    try:
        with pytest.raises(FatalTransportError, match=f"outbox folder {directory} cannot be written"):
            write_batch(directory, batch_of(1, 3), unnamed_files=unnamed_files)
    finally:
        directory.chmod(0o700)
    assert claims(directory) == []


@pytest.mark.parametrize("unnamed_files", PATHS)
def test_a_batch_is_written_only_in_the_folders_turn_and_built_before_it(
    tmp_path: Path, unnamed_files: bool
) -> None:
    """Two writer processes take turns on the folder (flock): while another holds it, a
    batch is built but nothing of it is written; it is written once the turn is free."""
    directory = outbox(tmp_path, "outbox")
    batch = batch_of(1, 20)
    done: list[list[Outcome]] = []
    other = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        writing = threading.Thread(
            target=lambda: done.append(write_batch(directory, batch, unnamed_files=unnamed_files))
        )
        writing.start()
        time.sleep(0.5)  # long enough to build 20 emails many times over
        assert writing.is_alive() and not files(directory) and not claims(directory)
    finally:
        os.close(other)  # the turn is free
    writing.join(30)
    assert [{o.status for o in outcomes} for outcomes in done] == [{"sent"}]
    assert len(files(directory)) == 20 and len(claims(directory)) == 20


def test_a_message_that_cannot_be_built_refuses_its_batch_with_nothing_written(tmp_path: Path) -> None:
    directory = outbox(tmp_path, "outbox")
    batch = batch_of(1, 20)
    envelopes = list(batch.envelopes)
    envelopes[-1] = envelopes[-1]._replace(headers={"X-Note": "two\nlines"})  # the last of 20
    with pytest.raises(ValueError, match="X-Note"):
        write_batch(directory, replace(batch, envelopes=tuple(envelopes)), unnamed_files=True)
    assert not files(directory) and not claims(directory)
