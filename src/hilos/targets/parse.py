"""parse_targets: target specs, ``-iL`` and exclusion files and host names into a TargetSpace.

Splits spec strings and files into tokens (bounded line reads), reads each token's form
(hilos.targets.specs), resolves names, subtracts exclusions and picks intervals or a trie.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from itertools import islice
from typing import IO

from hilos.errors import ResolveError, TargetError
from hilos.targets.intervals import MAPPED, V4_MAX, Flat, Interval, merge, subtract
from hilos.targets.space import Family, IPAddress, TargetSpace, unmapped
from hilos.targets.specs import (
    HOSTNAME,
    PREFIX,
    V4_CHARS,
    BadSpec,
    Pattern,
    parse_pattern,
    parse_v4_cidr,
    parse_v4_range,
    parse_v6,
)
from hilos.targets.trie import Lazy, Trie, trie_runs

__all__ = ["EXPAND_LIMIT", "MAX_LINE", "Resolver", "Spec", "parse_targets", "resolve_name"]

#: the longest line (in bytes) of a target or exclusion file; nmap's -iL reads specs of a few
#: dozen characters, so a longer line is a wrong file (a binary, /dev/zero), not a target list.
MAX_LINE = 4096

#: An octet pattern that expands to at most this many intervals (summed over all patterns) is
#: expanded into plain intervals; a larger one is kept as a byte-trie. Likewise a trie result
#: with at most this many runs is flattened back into interval arrays (faster index access).
#: 65536 intervals cost about 1.5 MB in the v4 arrays.
EXPAND_LIMIT = 1 << 16


@dataclass(slots=True)
class _Collected:
    v4: list[Interval] = field(default_factory=list)
    v6: list[Interval] = field(default_factory=list)
    patterns: list[Pattern] = field(default_factory=list)


Resolver = Callable[[str], Sequence[str]]


def resolve_name(name: str) -> list[str]:
    """Every address ``name`` resolves to (getaddrinfo), without IPv6 scope suffixes."""
    infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    out: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        out.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(out)


class _Parser:
    """Collects the intervals and patterns of many tokens, resolving names as it goes."""

    def __init__(
        self, kind: str, resolver: Resolver, warn: Callable[[str], None], strict: bool = False
    ) -> None:
        self.kind = kind  # "target" or "exclusion", for messages
        self.resolver = resolver
        self.warn = warn
        self.strict = strict  # a name that does not resolve raises ResolveError
        self.out = _Collected()
        self.names: dict[IPAddress, str] = {}

    def add(self, token: str, where: str = "") -> None:
        try:
            self._add(token)
        except BadSpec as exc:
            raise TargetError(f"invalid {self.kind} {token!r}{where}: {exc}") from None
        except ResolveError as exc:
            if not where:
                raise
            raise ResolveError(f"{exc}{where}") from None

    def _add_v6(self, iv: Interval) -> None:
        """An IPv6 interval; its part inside ::ffff:0:0/96 goes to IPv4 (mapped addresses)."""
        a, b = iv
        lo, hi = max(a, MAPPED), min(b, MAPPED + V4_MAX)
        if lo > hi:
            self.out.v6.append(iv)
            return
        self.out.v4.append((lo - MAPPED, hi - MAPPED))
        if a < lo:
            self.out.v6.append((a, lo - 1))
        if hi < b:
            self.out.v6.append((hi + 1, b))

    def _add(self, token: str) -> None:
        if ":" in token:
            self._add_v6(parse_v6(token))
        elif "/" in token:
            self._add_block(*token.split("/", 1))
        elif V4_CHARS.fullmatch(token):
            self._add_v4(token)
        else:
            self._add_addresses(self._lookup(token))

    def _add_block(self, addr: str, prefix: str) -> None:
        """ADDR/PREFIX where ADDR is an IPv4 address or a host name (IPv6 has a colon)."""
        if V4_CHARS.fullmatch(addr):
            self.out.v4.append(parse_v4_cidr(addr, prefix))
            return
        if not PREFIX.fullmatch(prefix) or int(prefix) > 128:
            raise BadSpec(f"prefix length {prefix!r} is not 0-32 (IPv4) or 0-128 (IPv6)")
        found = self._lookup(addr)
        # NAME/24 means the name's IPv4 block: the same /24 of its IPv6 address would be
        # 2**104 addresses. A prefix above 32, or a name without IPv4, means IPv6.
        v4 = [a for a in found if a.version == 4] if int(prefix) <= 32 else []
        v6 = [a for a in found if a.version == 6] if not v4 else []
        self.out.v4.extend(parse_v4_cidr(str(a), prefix) for a in v4)
        for a in v6:
            self._add_v6(parse_v6(f"{a}/{prefix}"))

    def _add_v4(self, token: str) -> None:
        """A full range (198.18.0.1-198.18.3.7), an octet pattern or a single address."""
        if token.count(".") == 6 and token.count("-") == 1:
            first, _, last = token.partition("-")
            if first.count(".") == 3:
                self.out.v4.append(parse_v4_range(first, last))
                return
        parsed = parse_pattern(token)
        if isinstance(parsed, Pattern):
            self.out.patterns.append(parsed)
        else:
            self.out.v4.append(parsed)

    def _add_addresses(self, found: Iterable[IPAddress]) -> None:
        for resolved in found:
            value = int(resolved)
            if resolved.version == 4:
                self.out.v4.append((value, value))
            else:
                self._add_v6((value, value))

    def _lookup(self, name: str) -> list[IPAddress]:
        if len(name) > 253 or not HOSTNAME.fullmatch(name):
            raise BadSpec("not an address, range, CIDR block or host name")
        try:
            found = [unmapped(ipaddress.ip_address(a)) for a in self.resolver(name)]
        except (OSError, UnicodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._unresolved(f"cannot resolve {self.kind} {name!r}: {reason}")
            return []
        if not found:
            self._unresolved(f"{self.kind} {name!r} resolved to no address")
        for address in found:
            self.names.setdefault(address, name)
        return found

    def _unresolved(self, message: str) -> None:
        # Skipping an exclusion would scan what the user asked to leave alone: always an error.
        # A target is skipped with a warning (nmap's habit) unless the caller wants it strict.
        if self.strict or self.kind == "exclusion":
            raise ResolveError(message)
        self.warn(f"{message}; skipped")


def _split_spec(text: str) -> Iterator[str]:
    """Split a spec string on whitespace and commas, keeping commas inside octet patterns.

    ``a.example,198.18.1,3,5.1-10,fd18::1`` -> ``a.example``, ``198.18.1,3,5.1-10``, ``fd18::1``:
    a comma piece made only of octet characters continues the previous IPv4 piece while that piece
    still lacks octets, or when it has no dot itself (``198.18.0.1,5`` = last octet 1 and 5).
    """
    for word in text.split():
        current: str | None = None
        for piece in word.split(","):
            if not piece:
                continue  # "a,,b" and a trailing comma are harmless
            if (
                current is not None
                and V4_CHARS.fullmatch(current)
                and V4_CHARS.fullmatch(piece)
                and (current.count(".") < 3 or "." not in piece)
            ):
                current = f"{current},{piece}"
                continue
            if current is not None:
                yield current
            current = piece
        if current is not None:
            yield current


def _lines(stream: IO[bytes] | IO[str], label: str, what: str) -> Iterator[str]:
    """The lines of a target file, each read with a bound: a line over MAX_LINE bytes (a file
    without newlines, /dev/zero) or a NUL byte (a binary file) is refused, never buffered whole."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if "\0" in line:
            raise TargetError(
                f"{what} file {label!r} line {number} holds a NUL byte: not a text file of targets"
            )
        if len(raw) > MAX_LINE and not line.endswith("\n"):
            raise TargetError(
                f"{what} file {label!r} line {number} is longer than {MAX_LINE} bytes: "
                "not a file of targets (one or a few specs a line)"
            )
        yield line


def _file_tokens(path: str, what: str) -> Iterator[tuple[str, str]]:
    """(token, " (FILE line N)") for every spec of a target or exclusion file; "-" is stdin."""
    stream: IO[bytes] | IO[str]
    try:
        if path == "-":
            # The byte stream when there is one: readline(limit) on it is bounded in bytes.
            stream = getattr(sys.stdin, "buffer", None) or sys.stdin
        else:
            stream = open(path, "rb")  # noqa: SIM115 (closed in the finally below)
    except OSError as exc:
        raise TargetError(f"cannot read {what} file {path!r}: {exc.strerror or exc}") from exc
    label = "stdin" if path == "-" else path
    try:
        for number, line in enumerate(_lines(stream, label, what), 1):
            text = line.split("#", 1)[0]
            for token in _split_spec(text):
                yield token, f" ({label} line {number})"
    except OSError as exc:
        raise TargetError(f"cannot read {what} file {path!r}: {exc.strerror or exc}") from exc
    except UnicodeError as exc:
        raise TargetError(f"cannot read {what} file {path!r}: {exc}") from exc
    finally:
        if path != "-":
            stream.close()


Spec = str | int | IPv4Address | IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
_SINGLE = (str, int, IPv4Address, IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)


def _spec_text(spec: object, kind: str) -> str:
    """One spec as text: ints are addresses (ipaddress.ip_address's reading), objects their str."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, bool) or not isinstance(spec, _SINGLE):
        raise TargetError(
            f"invalid {kind} {spec!r}: expected a string, an int or an ipaddress address or "
            f"network, not {type(spec).__name__}"
        )
    if isinstance(spec, int):
        try:
            return str(ipaddress.ip_address(spec))
        except ValueError:
            raise TargetError(
                f"invalid {kind} {spec}: an integer address must be 0 to 2**128-1"
            ) from None
    return str(spec)


def _spec_tokens(specs: Iterable[Spec] | Spec, kind: str = "target") -> Iterator[str]:
    if isinstance(specs, _SINGLE) and not isinstance(specs, bool):
        specs = [specs]  # a lone spec, not an iterable of its characters
    elif isinstance(specs, (bytes, bytearray)) or not isinstance(specs, Iterable):
        raise TargetError(
            f"invalid {kind}s {specs!r}: expected a spec string or an iterable of specs"
        )
    for spec in specs:
        yield from _split_spec(_spec_text(spec, kind))


def _build_v4(inc: _Collected, exc: _Collected) -> Family:
    patterns = inc.patterns + exc.patterns
    if sum(p.interval_count() for p in patterns) <= EXPAND_LIMIT:
        ivs = merge([*inc.v4, *(iv for p in inc.patterns for iv in p.intervals())])
        ex = merge([*exc.v4, *(iv for p in exc.patterns for iv in p.intervals())])
        return Flat(subtract(ivs, ex), True)
    trie = Trie()
    root = trie.from_intervals(merge(inc.v4))
    for p in inc.patterns:
        root = trie.union(root, trie.from_octets(p.octets))
    minus = trie.from_intervals(merge(exc.v4))
    for p in exc.patterns:
        minus = trie.union(minus, trie.from_octets(p.octets))
    root = trie.difference(root, minus)
    if root is None:
        return Flat([], True)
    # Count before collecting: giving up after collecting EXPAND_LIMIT tuples would cost ~8 MB.
    if sum(1 for _ in islice(trie_runs(root), EXPAND_LIMIT + 1)) > EXPAND_LIMIT:
        return Lazy(root)
    return Flat(list(trie_runs(root)), True)


def parse_targets(
    specs: Iterable[Spec] | Spec,
    *,
    exclude: Iterable[Spec] | Spec = (),
    input_file: str | None = None,
    exclude_file: str | None = None,
    on_warning: Callable[[str], None] | None = None,
    resolver: Resolver | None = None,
    strict: bool = False,
) -> TargetSpace:
    """Parse target specs (and ``-iL`` / exclusion files) into a TargetSpace.

    ``specs`` is an iterable of specs or one spec (a lone str is one spec). ``exclude`` strings
    are comma-separated lists of any target form. Files hold specs separated by whitespace or
    commas, with ``#`` comments; ``-`` reads stdin. Target names that do not resolve are reported
    to ``on_warning`` (and kept in ``space.warnings``) and skipped, or raise ResolveError with
    ``strict=True``; an exclusion that does not resolve always raises ResolveError (skipping it
    would scan what was meant to be left out). An empty result is not an error here: the caller
    decides. ``resolver`` replaces getaddrinfo (tests).

    >>> parse_targets(["127.0.0.0/30"], exclude=["127.0.0.0,127.0.0.3"]).size
    2

    Raises TargetError (a UsageError) naming the bad spec, e.g.
    ``invalid target '198.18.0.300': octet 300 is out of range 0-255``.
    """
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning is not None:
            on_warning(message)

    resolve = resolver or resolve_name
    inc = _Parser("target", resolve, warn, strict)
    for token in _spec_tokens(specs):
        inc.add(token)
    if input_file is not None:
        for token, where in _file_tokens(input_file, "target"):
            inc.add(token, where)
    exc = _Parser("exclusion", resolve, warn)
    for token in _spec_tokens(exclude, "exclusion"):
        exc.add(token)
    if exclude_file is not None:
        for token, where in _file_tokens(exclude_file, "exclusion"):
            exc.add(token, where)

    v4 = _build_v4(inc.out, exc.out)
    v6 = Flat(subtract(merge(inc.out.v6), merge(exc.out.v6)), False)
    space = TargetSpace(v4, v6, warnings=warnings)
    space.names.update((a, n) for a, n in inc.names.items() if a in space)
    return space
