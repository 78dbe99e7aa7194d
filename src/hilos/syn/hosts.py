"""The SYN scan's host table: per distinct address, what its probes need, computed once."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Iterator, Sequence

from hilos.errors import UsageError
from hilos.wire.cookie import M1, M2, MASK64, Cookie
from hilos.wire.frames import SYN_WORD, SynTemplate4
from hilos.wire.link import LinkTx
from hilos.wire.sockets import source_address

__all__ = ["MAX_HOSTS", "Address", "Entry", "HostTable", "host_ints"]

Address = str | ipaddress.IPv4Address | ipaddress.IPv6Address

#: A scan keeps a small table per host (address, cookie seed, checksum part): this bounds it.
MAX_HOSTS = 1 << 22

# Per host: ((text, 0) sendto address, cookie seed, packed v4 address or None, TCP checksum part
# (pseudo-header, constant words, destination), IP_HDRINCL packet prefix, Ethernet frame prefix
# when the LinkTx path covers the host).
Entry = tuple[tuple[str, int], int, bytes | None, int, bytes, bytes | None]


def host_ints(hosts: Iterable[Address] | Sequence[Address]) -> Iterator[tuple[int, int]]:
    """(version, integer address) of each target, without building ipaddress objects."""
    ranges = getattr(hosts, "iter_ranges", None)
    if ranges is not None:  # a hilos.targets.TargetSpace: walk its runs of consecutive addresses
        for first, last in ranges():
            v = first.version
            for ip in range(int(first), int(last) + 1):
                yield v, ip
        return
    for a in hosts:
        if isinstance(a, str):
            try:
                yield 4, int.from_bytes(socket.inet_pton(socket.AF_INET, a), "big")
                continue
            except OSError:
                pass
            try:
                yield 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, a.split("%")[0]), "big")
            except OSError:
                raise UsageError(f"not an IP address: {a!r}") from None
        else:
            yield a.version, int(a)


class HostTable:
    """The scan's hosts, each once, in the order given: `entries[h]` (see Entry), `names[h]`,
    and the index of an address as an int (`index4`, `index6`) for the receiver.

    Building costs about 1 us a host: the cookie's per-address seed (Cookie.host_seed, inlined)
    and, for IPv4, the TCP checksum of everything but the ports and sequence number.
    """

    __slots__ = ("entries", "families", "index4", "index6", "names")

    def __init__(self, hosts: Iterable[Address] | Sequence[Address], cookie: Cookie) -> None:
        table: list[Entry] = []
        names: list[str] = []
        self.index4: dict[int, int] = {}
        self.index6: dict[int, int] = {}
        templates: dict[int, SynTemplate4] = {}
        k1, k2 = cookie.k1, cookie.k2
        fams: set[int] = set()
        append, name_append = table.append, names.append
        index4, index6 = self.index4, self.index6
        for version, ip in host_ints(hosts):
            if ip in (index4 if version == 4 else index6):
                continue  # a duplicate: scanned once, reported once
            h = len(table)
            if h >= MAX_HOSTS:
                raise UsageError(
                    f"a SYN scan takes at most {MAX_HOSTS} addresses per run: split the targets"
                )
            # Cookie.host_seed, inlined: this runs once per address of a possibly huge range.
            x = ((ip & MASK64) ^ k1) * M1 & MASK64
            x ^= x >> 31
            x = ((x ^ (ip >> 64) ^ k2) * M2) & MASK64
            seed = x ^ (x >> 29)
            if version == 4:
                d4 = ip.to_bytes(4, "big")
                name = socket.inet_ntoa(d4)
                tpl = templates.get(ip >> 8)  # one route lookup per /24 (sends nothing)
                if tpl is None:
                    tpl = templates[ip >> 8] = SynTemplate4(source_address(name))
                base = tpl.const + (ip >> 16) + (ip & 0xFFFF) + SYN_WORD
                append(((name, 0), seed, d4, base, tpl.prefix, None))
                index4[ip] = h
                fams.add(4)
            else:
                name = socket.inet_ntop(socket.AF_INET6, ip.to_bytes(16, "big"))
                append(((name, 0), seed, None, 0, b"", None))
                index6[ip] = h
                fams.add(6)
            name_append(name)
        self.names = names
        self.entries = table
        self.families = fams

    def __len__(self) -> int:
        return len(self.entries)

    def use_link(self, link: LinkTx) -> int:
        """Give every IPv4 host `link` covers its Ethernet frame prefix (eth header, IPv4 header
        with its checksum, source, destination); returns how many hosts it covers."""
        head, partial = link.ip_prefix(6, 44)
        src4 = link.source.to_bytes(4, "big")
        covers = link.covers
        table = self.entries
        used = 0
        for h, (addr, seed, d4h, base, prefix, _f) in enumerate(table):
            if d4h is None or prefix[12:16] != src4:
                continue  # IPv6, or another source address (the TCP checksum covers it)
            ip = int.from_bytes(d4h, "big")
            if not covers(ip):
                continue
            csum = 0xFFFF - (partial + (ip >> 16) + (ip & 0xFFFF)) % 0xFFFF
            table[h] = (addr, seed, d4h, base, prefix, head + csum.to_bytes(2, "big") + src4 + d4h)
            used += 1
        return used
