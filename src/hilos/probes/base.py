"""What every probe module shares: the ProbeModule interface, the reply record, the send clock.

A probe module (zmap's probe_modules, masscan's templates) knows one kind of packet: how to build
it for a destination and how to recognise a valid answer to it. Engines own the sockets, the walk
and the pacing; they call a module's scalar builder, or inline its template in a per-packet loop.

The source port of a TCP probe carries its send time (the answer echoes it back), so each reply
yields an RTT sample without any per-probe table. Ports 16384..32767 sit below Linux's default
ephemeral range (32768-60999), so the kernel's own connections never collide with ours. 16384
ports x 0.262 ms ticks: RTTs are measured to a quarter millisecond and samples wrap only after
4.3 s (a shorter window aliased the RTTs of a congested link to near zero).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Final, NamedTuple, Protocol

__all__ = [
    "KIND_RST",
    "KIND_SYN_ACK",
    "KIND_UNREACH",
    "SPORT_BASE",
    "SPORT_COUNT",
    "SPORT_MASK",
    "TICK_MS",
    "TICK_SHIFT",
    "ProbeModule",
    "Reply",
    "addr_str",
    "send_tick",
    "unreach_reason",
]

SPORT_BASE: Final = 16384
SPORT_COUNT: Final = 16384
SPORT_MASK: Final = SPORT_COUNT - 1
TICK_SHIFT: Final = 18  # monotonic_ns >> 18: one tick = 0.262144 ms
TICK_MS: Final = (1 << TICK_SHIFT) / 1e6

# Reply kinds: small ints so the hot path compares ints, not strings.
KIND_SYN_ACK: Final = 1
KIND_RST: Final = 2  # RST-ACK to a SYN, or bare RST to an ACK probe
KIND_UNREACH: Final = 3  # ICMP/ICMPv6 destination unreachable; the reason is in Reply.reason


class Reply(NamedTuple):
    """One validated reply: who answered (address as int), on which port, what it means.

    `sport` is our source port the reply went to; `rtt_ms` comes from the send tick in that port.
    """

    family: int  # 4 or 6
    addr: int
    port: int
    sport: int
    kind: int  # KIND_SYN_ACK, KIND_RST, KIND_UNREACH
    reason: str  # "syn-ack", "reset", or an unreachable reason ("host-unreach", ...)
    rtt_ms: float


class ProbeModule(Protocol):
    """One kind of probe: build it, and say which cookie a valid answer to it carries.

    `build(dst, dport, sport, cookie)` returns the packet for an IPv4 (int < 2**32) or IPv6
    destination, as the engine's raw socket for that family sends it. `expected(flags, seq,
    ack)` is the cookie a reply with those TCP fields proves it knows (None: not an answer to
    this probe); the receiver compares it with the cookie it recomputes from the reply's source.
    """

    name: str
    flags: int

    def build(self, dst: int, dport: int, sport: int, cookie: int) -> bytes: ...

    def expected(self, flags: int, seq: int, ack: int) -> int | None: ...


def send_tick() -> int:
    """The source port for a probe sent now (it encodes the send time, see the module docstring)."""
    return SPORT_BASE + ((time.monotonic_ns() >> TICK_SHIFT) & SPORT_MASK)


def addr_str(family: int, addr: int) -> str:
    """The text form of an address given as an int (as in Reply.addr)."""
    return str(ipaddress.IPv4Address(addr) if family == 4 else ipaddress.IPv6Address(addr))


def unreach_reason(family: int, icmp_type: int, code: int) -> str | None:
    """nmap's reason word for an ICMP (v4 type 3) or ICMPv6 (type 1) destination unreachable."""
    if family == 4:
        if icmp_type != 3:
            return None
        return _UNREACH4.get(code, "unreach")
    if icmp_type != 1:
        return None
    return _UNREACH6.get(code, "unreach")


_UNREACH4 = {
    0: "net-unreach",
    1: "host-unreach",
    2: "proto-unreach",
    3: "port-unreach",
    9: "net-prohibited",
    10: "host-prohibited",
    13: "admin-prohibited",
}
_UNREACH6 = {
    0: "no-route",
    1: "admin-prohibited",
    2: "beyond-scope",
    3: "host-unreach",
    4: "port-unreach",
    5: "admin-prohibited",
    6: "admin-prohibited",
}
