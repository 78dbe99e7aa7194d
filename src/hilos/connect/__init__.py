"""The TCP connect scan: thousands of non-blocking connects in flight, exact open/closed/filtered.

A few worker threads (`loop.Worker`) each drive their own epoll set of non-blocking sockets. They
pull (host, port) probes lazily from one shared feed (`feed.HostFeed`), which interleaves the ports
of every active host, and keep a sliding window full: each time a connect finishes (SYN-ACK, RST,
ICMP error) or times out, a new one starts (RustScan's design). States follow nmap's connect scan:

    open      the handshake completed                       reason syn-ack
    closed    refused: the host answered with a RST         reason conn-refused
    filtered  no answer after every try                     reason no-response
              or an ICMP unreachable (EHOSTUNREACH, ...)    reason host-unreach, net-unreach, ...

Only ports still without an answer are probed again (`retries`). Per-probe timeouts adapt to the
round-trip times measured (hilos.wire.rtt), unless a fixed `timeout` is given. The window is sized
from RLIMIT_NOFILE (hilos.wire.limits); EMFILE/ENFILE/ENOBUFS/EADDRNOTAVAIL shrink it and the probe
is queued again, so no port is ever lost.

Usage::

    scanner = ConnectScanner(["127.0.0.1"], parse_ports("1-1024"))
    for host in scanner.results():          # one ScanHostResult per host, streamed as each finishes
        print(host.host, [p.port for p in host.open_ports])
"""

from __future__ import annotations

from hilos.connect.scanner import DEFAULT_THREADS, DEFAULT_WINDOW, ConnectScanner, connect_scan

__all__ = ["DEFAULT_THREADS", "DEFAULT_WINDOW", "ConnectScanner", "connect_scan"]
