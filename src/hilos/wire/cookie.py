"""The keyed probe cookie: how every engine makes its probes self-validating without a table.

Stateless matching (masscan/zmap style): a probe carries a keyed hash of where it went; the
receiver recomputes it from the reply's own fields and accepts the reply only on a match, so no
per-probe state is kept. Stray and blindly spoofed packets match with probability 2**-32. It is
not a MAC against an attacker who sees many cookies, which a scanner does not need.

One key and one mixing function, defined here and nowhere else, for every probe kind:
``seed = host_seed(ip)`` once per address, then ``value(seed, dport, sport)`` per probe (TCP SYN
and ACK, UDP), two splitmix64 multiply-xorshift rounds each. An ICMP echo has no ports: its
cookie is ``echo(ip)``, the same value with both port words 0, so a sweep's one `Cookie` keys
its echo requests and its TCP probes, and a loop sending both to an address computes the seed
once. Engines whose per-packet loops cannot afford a method call inline exactly this arithmetic
with the public constants `M1`, `M2`, `M3`, `MASK64` and the keys `k1`, `k2` (tests check every
such loop against `Cookie`).
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["M1", "M2", "M3", "MASK32", "MASK64", "Cookie"]

MASK64: Final = 0xFFFFFFFFFFFFFFFF
MASK32: Final = 0xFFFFFFFF
# splitmix64 constants (Steele et al.); odd multipliers are bijective modulo 2**64.
M1: Final = 0x9E3779B97F4A7C15
M2: Final = 0xBF58476D1CE4E5B9
M3: Final = 0x94D049BB133111EB


class Cookie:
    """The key of one scan or sweep and the hash of a probe (destination, port, source port).

    About 0.3 us per probe inlined (blake2b with a key costs about 1.4 us here). `k1` and `k2`
    are public so that hot loops can inline `host_seed` with M1/M2/MASK64.
    """

    __slots__ = ("k1", "k2")

    def __init__(self, secret: int | None = None) -> None:
        if secret is None:
            secret = int.from_bytes(os.urandom(16), "big")
        self.k1 = secret & MASK64
        self.k2 = (secret >> 64) & MASK64 or M3

    def host_seed(self, ip: int) -> int:
        """Per-address part of the hash (128-bit IPv6 addresses are folded in two rounds)."""
        x = ((ip & MASK64) ^ self.k1) * M1 & MASK64
        x ^= x >> 31
        x = ((x ^ (ip >> 64) ^ self.k2) * M2) & MASK64
        return x ^ (x >> 29)

    def value(self, seed: int, dport: int, sport: int) -> int:
        """The 32-bit cookie for a probe to `dport` from `sport` at the address with `seed`."""
        x = (seed ^ (dport << 16) ^ sport) * M3 & MASK64
        x ^= x >> 32
        return (x * M1 & MASK64) >> 32

    def echo(self, ip: int) -> int:
        """The 32-bit cookie of an ICMP echo request to `ip`: ``value(host_seed(ip), 0, 0)``
        (no ports; the identifier and sequence carry the 32 bits). A sweep's result key for an
        IPv6 address (the address plus hilos.probes.icmp_echo.V6_TAG, bit 128) gives the
        address's own cookie: host_seed only reads bits 0-127 (bit 128 lands at bit 64 of a
        product taken modulo 2**64)."""
        return self.value(self.host_seed(ip), 0, 0)
