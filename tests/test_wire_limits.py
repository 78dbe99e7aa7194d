"""hilos.wire.limits: RLIMIT_NOFILE raised once, windows and thread counts sized under it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hilos.errors import UsageError
from hilos.pool import MAX_THREADS
from hilos.wire.limits import (
    FDS_PER_THREAD,
    check_thread_limit,
    open_fds,
    raise_nofile_limit,
    window_for_limit,
)


def in_child(soft: int, hard: int, code: str) -> str:
    """Run `code` in a child whose RLIMIT_NOFILE is (soft, hard): a lowered hard limit cannot be
    raised again, so the test process keeps its own."""
    prelude = (
        "import resource\n"
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))\n"
        "from hilos.wire.limits import *\n"
        "from hilos.errors import UsageError\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_soft_limit_raised_to_the_hard_one() -> None:
    code = "print(raise_nofile_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    assert in_child(64, 300, code) == "300 300"


def test_ceiling_caps_the_raise_and_never_lowers() -> None:
    code = "print(raise_nofile_limit(ceiling=100), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    assert in_child(64, 300, code) == "100 100"
    assert in_child(150, 300, code) == "150 150"  # already above the ceiling: left alone


def test_window_for_limit_leaves_room() -> None:
    assert window_for_limit(100000, 4096) == 4096
    assert 4 <= window_for_limit(64, 4096) < 64
    assert window_for_limit(10, 4096) == 4  # never below a minimal window


def test_open_fds_counts_descriptors() -> None:
    before = open_fds()
    r, w = os.pipe()
    try:
        assert open_fds() == before + 2
    finally:
        os.close(r)
        os.close(w)


def test_thread_limit_names_the_descriptor_limit() -> None:
    code = """
try:
    check_thread_limit(40)
except UsageError as exc:
    print(exc)
print(check_thread_limit(1))
"""
    message, most = in_child(200, 200, code).splitlines()
    assert "RLIMIT_NOFILE 200" in message and f"needs {FDS_PER_THREAD} descriptors" in message
    assert 1 <= int(most) < 40


def test_thread_limit_bounds() -> None:
    with pytest.raises(UsageError, match="at least 1"):
        check_thread_limit(0)
    with pytest.raises(UsageError, match="--threads"):
        check_thread_limit(MAX_THREADS + 1)
    assert 1 <= check_thread_limit(2) <= MAX_THREADS


def test_raise_in_this_process_reports_the_limit_in_force() -> None:
    import resource

    got = raise_nofile_limit()
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert got == soft or soft == resource.RLIM_INFINITY
