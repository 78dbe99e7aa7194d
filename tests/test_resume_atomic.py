"""hilos.resume.atomic: a save leaves the old file or the new one, never a part or a stray."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from hilos.resume import atomic
from hilos.resume.atomic import write_atomically


def test_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "job.checkpoint"
    write_atomically(path, "first")
    write_atomically(path, "second")
    assert path.read_text() == "second"
    assert os.listdir(tmp_path) == ["job.checkpoint"]  # no temporary file left
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "job.checkpoint"
    write_atomically(path, "old")

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", broken)
    with pytest.raises(OSError):
        write_atomically(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["job.checkpoint"]


def test_a_dead_process_leftover_of_the_same_name_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "job.checkpoint"
    serial = next(atomic._SERIAL) + 1  # the name the next save takes
    stray = tmp_path / f".job.checkpoint.{os.getpid()}.{serial}"
    stray.write_text("left by a killed run")
    write_atomically(path, "saved")
    assert path.read_text() == "saved"
    assert not stray.exists()


def test_never_writes_through_a_link(tmp_path: Path) -> None:
    path = tmp_path / "job.checkpoint"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    serial = next(atomic._SERIAL) + 1
    (tmp_path / f".job.checkpoint.{os.getpid()}.{serial}").symlink_to(victim)
    write_atomically(path, "saved")
    assert victim.read_text() == "untouched"
    assert path.read_text() == "saved" and not path.is_symlink()


def test_threads_saving_at_once_never_share_a_temporary_file(tmp_path: Path) -> None:
    paths = [tmp_path / f"c{i}" for i in range(8)]
    threads = [
        threading.Thread(target=lambda p=p: [write_atomically(p, p.name * 50) for _ in range(20)])
        for p in paths
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)
    assert all(p.read_text() == p.name * 50 for p in paths)
