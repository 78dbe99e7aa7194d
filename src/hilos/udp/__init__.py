"""The UDP scan (nmap -sU): `UdpScanner`, stateless over raw sockets, or unprivileged."""

from __future__ import annotations

from hilos.udp.preload import preload_batched
from hilos.udp.scanner import DEFAULT_RETRIES, UdpScanner
from hilos.udp.state import LOSS_RETRIES

__all__ = ["DEFAULT_RETRIES", "LOSS_RETRIES", "UdpScanner", "preload_batched"]
