"""Host discovery (ping sweep): ICMP echo plus TCP probes over a target space, streaming results.

How a sweep runs::

    targets (lazy int ranges) ──► senders, paced by one TokenBucket (--rate)
        privileged, IPv4 behind a gateway: every probe of an address (echo, SYN 443, ACK 80)
            built as an Ethernet frame, batched by sendmmsg, from two processes (frames.FrameSender)
        otherwise one thread per engine: ICMP echo (raw or the unprivileged "ping" socket),
            raw TCP (engines; probes.tcp_transport), or connect to 80 and 443 (connects)
    receiver threads ──► validate each answer from its own fields (keyed cookie) ──► results queue
    default retries: loss probes to hosts that answered; a retry pass only if some were lost
    explicit --retries N: N more passes over the addresses that have not answered yet (passes)
    then one wait after the last send (adaptive, see Sweeper) ──► down hosts, if asked for

Nothing is stored per probe, only the answers: a /8 costs memory in proportion to the hosts that
are up, not to its 16.7 million addresses.

Modules: base (defaults, Range, the Engine protocol), targets (int ranges), engines (ICMP echo,
raw TCP), connects (unprivileged TCP), frames (the Ethernet-frame fast path), choose (which
engines), passes (one pass, loss probes), sweeper (Sweeper, sweep).

Example::

    from hilos.sweep import sweep
    from hilos.targets import parse_targets

    for host in sweep(parse_targets(["127.0.0.1"]), timeout=1.0):
        print(host.host, host.status, host.reason, host.rtt_ms)
"""

from __future__ import annotations

from hilos.sweep.api import sweep
from hilos.sweep.base import (
    DEFAULT_RATE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    MAX_V6_ADDRESSES,
    MIN_WAIT,
    SweepProgress,
    check_space_size,
)
from hilos.sweep.sweeper import Sweeper

__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_V6_ADDRESSES",
    "MIN_WAIT",
    "SweepProgress",
    "Sweeper",
    "check_space_size",
    "sweep",
]
