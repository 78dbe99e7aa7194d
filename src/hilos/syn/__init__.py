"""The raw SYN scan (nmap -sS): `syn_scan` and `SynScanner`, stateless over raw sockets."""

from __future__ import annotations

from hilos.syn.hosts import MAX_HOSTS
from hilos.syn.scanner import SynScanner, syn_scan
from hilos.wire.sockets import can_raw

__all__ = ["MAX_HOSTS", "SynScanner", "can_raw", "syn_scan"]
