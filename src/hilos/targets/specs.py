"""One target token's grammar: IPv4 CIDR blocks, ranges and nmap octet patterns, IPv6 forms.

Each function reads one token and returns an inclusive integer interval (or an octet
``Pattern``); a bad token raises BadSpec with the reason, and the caller names the spec.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

from hilos.targets.intervals import V4_MAX, Interval, merge

__all__ = [
    "HOSTNAME",
    "PREFIX",
    "V4_CHARS",
    "BadSpec",
    "Pattern",
    "parse_pattern",
    "parse_v4_cidr",
    "parse_v4_range",
    "parse_v6",
]

V4_CHARS = re.compile(r"[0-9.,*-]+")
_OCTET_ITEM = re.compile(r"([0-9]*)-([0-9]*)|([0-9]+)|\*")
HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
PREFIX = re.compile(r"[0-9]{1,3}")


class BadSpec(Exception):
    """A token is invalid: the message is the reason; the parser adds the spec (TargetError)."""


@dataclass(frozen=True, slots=True)
class Pattern:
    """An nmap octet pattern: the cartesian product of four sorted, merged octet range lists."""

    octets: tuple[tuple[Interval, ...], ...]

    def interval_count(self) -> int:
        # Trailing full octets (0-255) make each combination of the others one interval.
        last = 3
        while last >= 0 and self.octets[last] == ((0, 255),):
            last -= 1
        if last < 0:
            return 1
        count = len(self.octets[last])
        for ranges in self.octets[:last]:
            count *= sum(hi - lo + 1 for lo, hi in ranges)
        return count

    def intervals(self) -> Iterator[Interval]:
        last = 3
        while last >= 0 and self.octets[last] == ((0, 255),):
            last -= 1
        if last < 0:
            yield 0, V4_MAX
            return
        shift = 8 * (3 - last)

        def prefixes(k: int) -> Iterator[int]:
            if k == 0:
                yield 0
                return
            for p in prefixes(k - 1):
                for lo, hi in self.octets[k - 1]:
                    for v in range(lo, hi + 1):
                        yield (p << 8) | v

        for p in prefixes(last):
            for lo, hi in self.octets[last]:
                base = p << (8 * (4 - last))
                yield base | (lo << shift), base | (((hi + 1) << shift) - 1)


def _octet(text: str) -> int:
    if len(text) > 1 and text[0] == "0":
        raise BadSpec(f"octet {text!r} has a leading zero (ambiguous: octal?)")
    if len(text) > 3 or int(text) > 255:
        raise BadSpec(f"octet {text} is out of range 0-255")
    return int(text)


def parse_pattern(token: str) -> Pattern | Interval:
    parts = token.split(".")
    if len(parts) != 4:
        raise BadSpec(f"expected 4 dot-separated octets, got {len(parts)}")
    octets: list[tuple[Interval, ...]] = []
    for part in parts:
        if not part:
            raise BadSpec("empty octet")
        ranges: list[Interval] = []
        for item in part.split(","):
            m = _OCTET_ITEM.fullmatch(item)
            if m is None:
                raise BadSpec(f"cannot parse octet {item!r} (expected N, N-M, N-, -M or *)")
            if m.group(3) is not None:
                v = _octet(m.group(3))
                ranges.append((v, v))
            elif item == "*":
                ranges.append((0, 255))
            else:
                lo = _octet(m.group(1)) if m.group(1) else 0
                hi = _octet(m.group(2)) if m.group(2) else 255
                if lo > hi:
                    raise BadSpec(f"octet range {item!r} starts after it ends")
                ranges.append((lo, hi))
        octets.append(tuple(merge(ranges)))
    pattern = Pattern(tuple(octets))
    if all(len(r) == 1 and r[0][0] == r[0][1] for r in octets[:3]) and len(octets[3]) == 1:
        # 198.18.0.1-200 and single addresses: one interval.
        base = (octets[0][0][0] << 24) | (octets[1][0][0] << 16) | (octets[2][0][0] << 8)
        return base | octets[3][0][0], base | octets[3][0][1]
    return pattern


def parse_v6(token: str) -> Interval:
    if "%" in token:
        raise BadSpec("scoped IPv6 addresses (with %zone) are not supported")
    if "/" in token:
        addr, _, prefix = token.partition("/")
        if not PREFIX.fullmatch(prefix) or int(prefix) > 128:
            raise BadSpec(f"prefix length {prefix!r} is not 0-128")
        try:
            net = ipaddress.IPv6Network(f"{addr}/{int(prefix)}", strict=False)
        except ValueError as exc:
            raise BadSpec(str(exc)) from None
        return int(net.network_address), int(net.broadcast_address)
    first, dash, last = token.partition("-")
    try:
        start = int(IPv6Address(first))
    except ValueError as exc:
        raise BadSpec(str(exc)) from None
    if not dash:
        return start, start
    if ":" in last:
        try:
            end = int(IPv6Address(last))
        except ValueError as exc:
            raise BadSpec(str(exc)) from None
    elif re.fullmatch(r"[0-9A-Fa-f]{1,4}", last):
        end = (start & ~0xFFFF) | int(last, 16)
    else:
        raise BadSpec(f"range end {last!r} is neither an IPv6 address nor a hex group")
    if start > end:
        raise BadSpec("range starts after it ends")
    return start, end


def parse_v4_cidr(addr: str, prefix: str) -> Interval:
    if not PREFIX.fullmatch(prefix) or int(prefix) > 32:
        raise BadSpec(f"prefix length {prefix!r} is not 0-32")
    try:
        net = ipaddress.IPv4Network(f"{addr}/{int(prefix)}", strict=False)
    except ValueError as exc:
        raise BadSpec(str(exc)) from None
    return int(net.network_address), int(net.broadcast_address)


def parse_v4_range(first: str, last: str) -> Interval:
    try:
        start, end = int(IPv4Address(first)), int(IPv4Address(last))
    except ValueError as exc:
        raise BadSpec(str(exc)) from None
    if start > end:
        raise BadSpec("range starts after it ends")
    return start, end
