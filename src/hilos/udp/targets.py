"""The UDP scan's host table: addresses, per-host cookie seeds, and the cookie of each probe."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from hilos.errors import UsageError
from hilos.probes.base import SPORT_BASE, SPORT_MASK
from hilos.wire.cookie import Cookie

__all__ = ["Address", "UdpTargets"]

Address = str | ipaddress.IPv4Address | ipaddress.IPv6Address


class UdpTargets:
    """Hosts by index: `names`, `families`, `sockaddrs`, `seeds`; `index4`/`index6` map an
    address (int) back to its index. Duplicates are scanned once.

    Each probe's source port is keyed by (host, port): ``SPORT_BASE + cookie & SPORT_MASK``,
    the same for every attempt, so an ICMP error quoting only the UDP header still validates;
    the payload's id field carries the full 32-bit cookie of (host, port, source port).
    """

    def __init__(self, hosts: Iterable[Address], cookie: Cookie) -> None:
        self.cookie = cookie
        self.names: list[str] = []
        self.families: list[int] = []
        self.ints: list[int] = []
        self.sockaddrs: list[tuple[str, int]] = []
        self.seeds: list[int] = []
        self.index4: dict[int, int] = {}
        self.index6: dict[int, int] = {}
        for raw in hosts:
            try:
                addr = ipaddress.ip_address(str(raw))
            except ValueError as exc:
                raise UsageError(f"not an IP address: {raw!r}") from exc
            index = self.index4 if addr.version == 4 else self.index6
            value = int(addr)
            if value in index:
                continue
            index[value] = len(self.names)
            self.names.append(str(addr))
            self.families.append(addr.version)
            self.ints.append(value)
            self.sockaddrs.append((str(addr), 0))
            self.seeds.append(cookie.host_seed(value | (addr.version == 6) << 128))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def family_set(self) -> frozenset[int]:
        return frozenset(self.families)

    def sport(self, h: int, port: int) -> int:
        """Our source port for probes of host `h` to `port`."""
        return SPORT_BASE + (self.cookie.value(self.seeds[h], port, 0) & SPORT_MASK)

    def value(self, h: int, port: int) -> int:
        """The 32-bit cookie the payload of a probe of host `h` to `port` carries."""
        return self.cookie.value(self.seeds[h], port, self.sport(h, port))

    def lookup(self, family: int, addr: int) -> int | None:
        return (self.index4 if family == 4 else self.index6).get(addr)


def sockfamily(family: int) -> int:
    return socket.AF_INET if family == 4 else socket.AF_INET6
