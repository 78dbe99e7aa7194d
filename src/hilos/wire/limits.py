"""Descriptor limits: raise RLIMIT_NOFILE once, size socket windows and thread counts under it."""

from __future__ import annotations

import os
import resource

from hilos.errors import UsageError
from hilos.pool import MAX_THREADS

__all__ = [
    "FDS_PER_THREAD",
    "FD_RESERVE",
    "check_thread_limit",
    "open_fds",
    "raise_nofile_limit",
    "window_for_limit",
]

#: Descriptors one connect worker needs at least: its epoll set and a minimal socket window.
FDS_PER_THREAD = 8
#: Descriptors kept back for everything else the process needs (outputs, banner grabs, epoll).
FD_RESERVE = 48
# What an unlimited hard limit is taken as: a soft limit must be a number.
_UNLIMITED_AS = 1 << 20


def raise_nofile_limit(ceiling: int | None = None) -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one (at most `ceiling`); returns the soft
    limit now in force, an unlimited one counted as `ceiling` (or 2**20). Failing to raise it
    is not an error: callers size their windows from what is returned."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = resource.RLIM_INFINITY
    want = _UNLIMITED_AS if hard == unlimited else hard
    if ceiling is not None:
        want = min(want, ceiling)
    if soft == unlimited:
        return want
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass  # keep what we have; the window is sized from it
    return int(soft)


def open_fds() -> int:
    """Descriptors this process holds now (16 when /proc cannot tell)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


def check_thread_limit(threads: int) -> int:
    """Validate a connect scan's `threads` against the descriptor limit (raised to the hard
    limit first): each worker needs an epoll set and a few sockets. UsageError naming the limit,
    before anything starts; returns the most threads allowed."""
    soft = raise_nofile_limit()
    most = max(1, (soft - open_fds() - FD_RESERVE) // FDS_PER_THREAD)
    if threads < 1:
        raise UsageError(f"threads must be at least 1, not {threads}")
    if threads > most:
        raise UsageError(
            f"--threads {threads} is more than the descriptor limit allows: at most {most} "
            f"threads here (RLIMIT_NOFILE {soft}; each thread needs {FDS_PER_THREAD} descriptors)"
        )
    if threads > MAX_THREADS:
        raise UsageError(f"--threads must be at most {MAX_THREADS}, not {threads}")
    return min(most, MAX_THREADS)


def window_for_limit(soft_limit: int, wanted: int) -> int:
    """The socket window that fits under `soft_limit` descriptors, leaving room for the rest."""
    free = soft_limit - open_fds() - FD_RESERVE
    return max(4, min(wanted, free))
