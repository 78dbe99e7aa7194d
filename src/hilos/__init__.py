"""hilos: multithreaded network tasks — a worker-pool engine, a host sweep, a port scanner."""

from __future__ import annotations

import typing

from hilos.errors import (
    HilosError,
    InputError,
    InvalidArgument,
    LabError,
    NetworkError,
    OutputError,
    PortSpecError,
    PrivilegeError,
    ResolveError,
    ResourceError,
    TargetError,
    TooLargeError,
    UsageError,
)
from hilos.lazy import lazy_names as _lazy_names
from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.targets import Permutation, TargetSpace, parse_ports, parse_targets, top_ports

if typing.TYPE_CHECKING:
    from hilos.pool import Pool, PoolStats, TaskResult, run_all

__version__ = "0.1.0"

# The worker pool loads on first use: a sweep or scan from the command line never needs it
# (~20 ms of every start).
_LAZY = {"Pool", "PoolStats", "TaskResult", "run_all"}
__getattr__ = _lazy_names(__name__, dict.fromkeys(_LAZY, "hilos.pool"))


__all__ = [
    "HilosError",
    "HostResult",
    "InputError",
    "InvalidArgument",
    "LabError",
    "NetworkError",
    "OutputError",
    "Permutation",
    "Pool",
    "PoolStats",
    "PortResult",
    "PortSpecError",
    "PrivilegeError",
    "ResolveError",
    "ResourceError",
    "ScanHostResult",
    "TargetError",
    "TargetSpace",
    "TaskResult",
    "TooLargeError",
    "UsageError",
    "__version__",
    "parse_ports",
    "parse_targets",
    "run_all",
    "top_ports",
]
