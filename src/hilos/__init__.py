"""hilos: multithreaded network tasks — a worker-pool engine, a host-discovery sweep, a port scanner."""

from __future__ import annotations

from hilos.errors import (
    HilosError,
    LabError,
    NetworkError,
    PortSpecError,
    PrivilegeError,
    ResourceError,
    TargetError,
    UsageError,
)
from hilos.results import HostResult, PortResult, ScanHostResult

__version__ = "0.1.0"

__all__ = [
    "HilosError",
    "HostResult",
    "LabError",
    "NetworkError",
    "PortResult",
    "PortSpecError",
    "PrivilegeError",
    "ResourceError",
    "ScanHostResult",
    "TargetError",
    "UsageError",
    "__version__",
]
