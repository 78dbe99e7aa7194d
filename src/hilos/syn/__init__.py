"""The raw SYN scan (nmap -sS): `syn_scan` and `SynScanner`, stateless over raw sockets.

The names load when first used: a UDP scan or a sweep that only asks for MAX_HOSTS (or
hilos.syn.hosts) does not pay for the SYN engine's modules (~10 ms of its start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hilos.lazy import lazy_names
from hilos.syn.hosts import MAX_HOSTS

if TYPE_CHECKING:
    from hilos.syn.scanner import SynScanner, syn_scan
    from hilos.wire.sockets import can_raw

__all__ = ["MAX_HOSTS", "SynScanner", "can_raw", "syn_scan"]

__getattr__ = lazy_names(
    __name__,
    {
        "SynScanner": "hilos.syn.scanner",
        "syn_scan": "hilos.syn.scanner",
        "can_raw": "hilos.wire.sockets",
    },
)
