"""Closed UDP ports behind Linux's ICMP rate limit: keep asking, once a second, until they answer.

Linux sends a destination unreachable to one destination at most once per
net.ipv4.icmp_ratelimit (1 s) after a burst of about six (inet_peer_xrlim_allow), so a host with
many closed ports answers only the first few of a fast pass; the rest look silent (nmap slows to
one probe per second per host for this). After the regular passes, a host that answered port
unreachable for some ports, no faster than such a limiter allows, and is still silent on more
ports than its burst would have answered (`looks_rate_limited`) is suspected of it: its silent
ports are probed again every `INTERVAL` (one payload each: a second datagram to a port would
spend the next token on a known answer) while that brings new answers, and given up after
`QUIET_PASSES` passes in a row bring none. A limited host whose silent ports are also dropped
by a firewall costs those few passes; the keyed walk spreads the rest over all hosts at once,
so the whole scan waits about as long as its most rate-limited host needs: (its closed ports
- 6) seconds, the floor for any scanner that reports them closed.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from hilos.udp.scanner import UdpScanner

__all__ = ["BURST", "INTERVAL", "QUIET_PASSES", "drain_rate_limited", "looks_rate_limited"]

BURST: Final = 6  # port unreachables Linux sends a peer at once before limiting to 1/s
INTERVAL: Final = 1.0  # seconds between passes: the kernel's default icmp_ratelimit
QUIET_PASSES: Final = 2  # passes in a row without a new answer before a host is given up


def looks_rate_limited(closed: int, silent: int, elapsed: float) -> bool:
    """Whether a host's silent ports may be closed ones whose port unreachables its ICMP rate
    limit dropped: it sent some, no faster than Linux's limiter lets them out (the burst,
    then 1/s; 2/s and 2 more allowed for timing), and more ports wait than the burst would
    have answered at once. A host that answered faster is not limited: its silence is the
    ports' (a firewall's drop), given up without the slow rounds."""
    return (
        closed > 0 and silent > 0 and closed + silent > BURST and closed <= BURST + 2 + 2 * elapsed
    )


def suspects(scanner: UdpScanner) -> dict[int, list[int]]:
    """Host -> its silent indices, for the hosts that look rate-limited."""
    st = scanner.state
    elapsed = scanner.stats.elapsed
    silent: dict[int, list[int]] = defaultdict(list)
    for idx in scanner.walk():
        if not st.is_final(idx):
            silent[idx // st.np].append(idx)
    return {h: ix for h, ix in silent.items() if looks_rate_limited(st.closed[h], len(ix), elapsed)}


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
