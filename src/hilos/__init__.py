"""hilos: multithreaded network tasks — a worker-pool engine, a host sweep, a port scanner."""

from __future__ import annotations

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
from hilos.pool import Pool, PoolStats, TaskResult, run_all
from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.targets import Permutation, TargetSpace, parse_ports, parse_targets, top_ports

__version__ = "0.1.0"

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
