"""What every output writer shares: the stream it owns, filtering rules, the run summary."""

from __future__ import annotations

import contextlib
import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TextIO

from hilos.errors import OutputError
from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.sanitize import FIELD_LIMIT, clean, clean_optional

Kind = Literal["sweep", "scan"]
Result = HostResult | ScanHostResult

# nmap folds a non-open state into "Not shown" once more than this many ports share it
# (PortList::isIgnoredState in nmap's portlist.cc, at verbosity 0).
EXTRAPORTS_THRESHOLD = 25


@dataclass(frozen=True, slots=True)
class Summary:
    """The numbers of a finished (or interrupted) run, as printed in every trailer."""

    addresses: int
    up: int
    elapsed: float
    error: str | None = None

    @property
    def down(self) -> int:
        return max(self.addresses - self.up, 0)

    def sentence(self) -> str:
        """`256 IP addresses (61 hosts up) scanned in 1.23 seconds`, nmap's wording."""
        addrs = "IP address" if self.addresses == 1 else "IP addresses"
        hosts = "host" if self.up == 1 else "hosts"
        return (
            f"{self.addresses} {addrs} ({self.up} {hosts} up) scanned in {self.elapsed:.2f} seconds"
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], fallback: Summary) -> Summary:
        """Build from the caller's dict {"addresses", "up", "elapsed"}; missing keys fall back."""

        def _num(key: str, default: float) -> float:
            value = data.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"summary[{key!r}] must be a number, not {value!r}")
            return value

        return cls(
            addresses=int(_num("addresses", fallback.addresses)),
            up=int(_num("up", fallback.up)),
            elapsed=float(_num("elapsed", fallback.elapsed)),
            error=fallback.error,
        )


@dataclass(frozen=True, slots=True)
class CleanPort:
    """A PortResult with its untrusted strings cleaned, ready for any writer."""

    port: int
    proto: str
    state: str
    reason: str
    service: str | None
    product: str | None
    version: str | None
    banner: str | None
    tls: bool

    @property
    def product_version(self) -> str:
        """`OpenSSH 9.2p1`: nmap's VERSION column."""
        return " ".join(x for x in (self.product, self.version) if x)

    @property
    def probed(self) -> bool:
        """Was anything learned from the service itself (rather than the port number)?"""
        return bool(self.product or self.version or self.banner)


def clean_port(p: PortResult, banner_limit: int) -> CleanPort:
    if p.product is None and p.version is None and p.banner is None:
        # Nothing learned from the service (a scan's filtered and closed ports, a million at a
        # /16): the same few combinations again and again, cleaned once each.
        return _plain_port(p.port, p.proto, p.state, p.reason, p.service, p.tls)
    return CleanPort(
        port=p.port,
        proto=p.proto,
        state=p.state,
        reason=p.reason,
        service=clean_optional(p.service, FIELD_LIMIT),
        product=clean_optional(p.product, FIELD_LIMIT),
        version=clean_optional(p.version, FIELD_LIMIT),
        banner=clean_optional(p.banner, banner_limit),
        tls=p.tls,
    )


@functools.lru_cache(maxsize=8192)
def _plain_port(
    port: int, proto: str, state: str, reason: str, service: str | None, tls: bool
) -> CleanPort:
    service = clean_optional(service, FIELD_LIMIT)
    return CleanPort(port, proto, state, reason, service, None, None, None, tls)


@dataclass(frozen=True, slots=True)
class PortView:
    """Which ports a human-facing writer lists, and what it folds into "Not shown"."""

    shown: tuple[PortResult, ...]
    # state -> Counter(reason -> count), in order of decreasing count
    hidden: dict[str, Counter[str]]

    @property
    def hidden_count(self) -> int:
        return sum(sum(c.values()) for c in self.hidden.values())


def split_ports(ports: tuple[PortResult, ...], show_all: bool, *, fold_many: bool) -> PortView:
    """Apply the listing rules.

    show_all lists everything. Otherwise closed ports are never listed, and with `fold_many`
    (text, grepable, XML: nmap's rule) any other non-open state with more than
    EXTRAPORTS_THRESHOLD ports is folded too, so a firewalled host is one line, not 65535.
    """
    global _last_split
    # Every writer of an OutputSet asks about the same tuple in turn: answer from a cache of
    # the last tuple seen (the entry holds the tuple, so its id cannot be reused meanwhile).
    last = _last_split
    if last is None or last[0] is not ports:
        last = _last_split = (ports, {})
    key = (show_all, fold_many)
    view = last[1].get(key)
    if view is None:
        view = last[1][key] = _split(ports, show_all, fold_many)
    return view


def _split(ports: tuple[PortResult, ...], show_all: bool, fold_many: bool) -> PortView:
    if show_all or not ports:
        return PortView(ports, {})
    by_state: Counter[str] = Counter(p.state for p in ports)
    fold = {"closed"} & by_state.keys()
    if fold_many:
        fold.update(s for s, n in by_state.items() if s != "open" and n > EXTRAPORTS_THRESHOLD)
    if not fold:
        return PortView(ports, {})
    shown = tuple(p for p in ports if p.state not in fold)
    hidden = {
        state: Counter(p.reason for p in ports if p.state == state)
        for state in sorted(fold, key=lambda s: -by_state[s])
    }
    return PortView(shown, hidden)


_last_split: tuple[tuple[PortResult, ...], dict[tuple[bool, bool], PortView]] | None = None


def hidden_phrase(state: str, reasons: Counter[str], proto: str = "tcp") -> str:
    """`997 closed tcp ports (conn-refused)` or `(995 conn-refused, 2 no-response)`."""
    total = sum(reasons.values())
    noun = "port" if total == 1 else "ports"
    if len(reasons) == 1:
        why = next(iter(reasons))
    else:
        why = ", ".join(f"{n} {r}" for r, n in reasons.most_common())
    return f"{total} {state} {proto} {noun} ({why})"


class Writer:
    """Base of every format writer: owns one text stream, flushes after every result.

    Subclasses implement `_header`, `_write` and `_trailer`; the stream is flushed after each,
    so a file keeps everything written so far even if the process is killed.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        kind: Kind,
        show_all: bool,
        meta: Mapping[str, object],
        owns_stream: bool,
        name: str,
    ) -> None:
        self.stream = stream
        self.kind = kind
        self.show_all = show_all
        self.meta = meta
        self.owns_stream = owns_stream
        self.name = name
        self.closed = False
        self.failed = False  # a write failed: later writes are skipped, close() only closes
        self._setup()

    def _setup(self) -> None:
        """Per-format state, made once the stream is known."""

    @property
    def start(self) -> float:
        value = self.meta.get("start")
        return float(value) if isinstance(value, (int, float)) else time.time()

    @property
    def version(self) -> str:
        return str(self.meta.get("version", ""))

    @property
    def args(self) -> str:
        # A command line can hold anything (argv is bytes): clean it like a banner.
        return clean(str(self.meta.get("args", "hilos")), 4096)

    def open(self) -> None:
        self._guard(self._header)

    def write(self, result: Result, flush: bool = True) -> None:
        # Down hosts are listed only with --all (every format agrees on this).
        if self.failed or (result.status != "up" and not self.show_all):
            return
        self._guard(lambda: self._write(result), flush)

    def flush(self) -> None:
        if not self.failed and not self.closed:
            self._guard(lambda: None)

    def write_many(self, results: list[Result]) -> None:
        """Write several results, then flush once."""
        shown = [r for r in results if r.status == "up" or self.show_all]
        if self.failed or not shown:
            return

        def each() -> None:
            text = self._text_many(shown)
            if text is not None:
                self.stream.write(text)  # one write: per-line writes cost ~6 us each
                return
            for r in shown:
                self._write(r)

        self._guard(each)

    def _text_many(self, results: list[Result]) -> str | None:
        """What `_write` would write for each of `results`, joined (None: not offered)."""
        return None

    def close(self, summary: Summary) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if not self.failed:
                self._guard(lambda: self._trailer(summary))
        finally:
            if self.owns_stream:
                # After a failed flush the buffer still holds the data: close() retries it and
                # fails the same way, which was already reported once.
                with contextlib.suppress(OSError):
                    self.stream.close()

    def _guard(self, action: Callable[[], None], flush: bool = True) -> None:
        """Run one write and the flush after it; an OSError becomes one OutputError."""
        try:
            action()
            if flush:
                self.stream.flush()
        except OSError as exc:
            self.failed = True
            raise OutputError(self.name, exc) from exc

    def _header(self) -> None:
        """Written once when the output opens."""

    def _write(self, result: Result) -> None:
        """Write one result that passed the host filter."""
        raise NotImplementedError

    def _trailer(self, summary: Summary) -> None:
        """Written once at close, also after an interruption."""
