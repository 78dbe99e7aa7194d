"""Closed UDP ports behind Linux's ICMP rate limit: keep asking, once a second, until they answer.

Linux sends a destination unreachable to one destination at most once per
net.ipv4.icmp_ratelimit (1 s) after a burst of about six (inet_peer_xrlim_allow), so a host with
many closed ports answers only the first few of a fast pass; the rest look silent (nmap slows to
one probe per second per host for this). After the regular passes, a host that answered port
unreachable for some ports and is still silent on at least `SILENT_MIN` others is suspected of
it: its silent ports are probed again every `INTERVAL` while that brings new answers, and
given up after `QUIET_PASSES` passes in a row bring none. A host whose silent ports are simply
dropped by a firewall costs those few passes; the keyed walk spreads the rest over all hosts
at once, so the whole scan waits about as long as its most rate-limited host needs.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from hilos.udp.scanner import UdpScanner

__all__ = ["INTERVAL", "QUIET_PASSES", "SILENT_MIN", "drain_rate_limited"]

SILENT_MIN: Final = 6  # silent ports beside a port unreachable: more than loss would leave
INTERVAL: Final = 1.0  # seconds between passes: the kernel's default icmp_ratelimit
QUIET_PASSES: Final = 2  # passes in a row without a new answer before a host is given up


def suspects(scanner: UdpScanner) -> dict[int, list[int]]:
    """Host -> its silent indices, for the hosts that look rate-limited."""
    st = scanner.state
    silent: dict[int, list[int]] = defaultdict(list)
    for idx in scanner.walk():
        if not st.is_final(idx):
            silent[idx // st.np].append(idx)
    return {h: ix for h, ix in silent.items() if st.closed[h] and len(ix) >= SILENT_MIN}


def drain_rate_limited(
    scanner: UdpScanner, send_round: Callable[[list[int], int], None], cancel: threading.Event
) -> int:
    """Probe the silent ports of rate-limited hosts until they stop answering; returns the
    number of passes made. `send_round(indices, attempt)` sends those probes and waits for
    their answers (raw sockets, or the unprivileged path's connected sockets)."""
    st = scanner.state
    pending = suspects(scanner)
    quiet = dict.fromkeys(pending, 0)
    passes = 0
    while pending and not cancel.wait(INTERVAL):
        before = {h: st.done[h] for h in pending}
        indices = [i for ix in pending.values() for i in ix if not st.is_final(i)]
        # Attempt numbers go on past the regular passes: rotating ports keep rotating.
        send_round(indices, scanner.retries + 1 + passes)
        passes += 1
        for h in list(pending):
            left = [i for i in pending[h] if not st.is_final(i)]
            quiet[h] = 0 if st.done[h] > before[h] else quiet[h] + 1
            if not left or quiet[h] >= QUIET_PASSES:
                del pending[h]
            else:
                pending[h] = left
    return passes
