"""The whole scan as one library call: discovery, port scan, banners, naming.

`scan()` returns a `Scan`; iterate it for one ScanHostResult per host as each finishes. The CLI
is a thin layer over it (parse options, write outputs); the library never prints.

    from hilos.pipeline import scan

    job = scan(["127.0.0.1"], [22, 80, 443], scan_type="connect", timeout=0.5)
    try:
        for host in job:
            print(host.host, host.status, [(p.port, p.state) for p in host.ports])
    except KeyboardInterrupt:
        job.cancel()
        rest = job.drain()  # hosts not finished: complete=False, the ports answered so far
    print(job.summary.addresses, "addresses probed,", job.summary.up, "up")

Host states follow nmap: a host found up by discovery stays up with its reason and RTT, whatever
its ports said; with ``discovery=False`` (-Pn) every target is up, reason "user-set". Down hosts
come last, only with `show_all`. ``shard=(i, n)``: the i-th of n disjoint parts of a keyed walk
over the whole space x ports, which discovery only filters, so shards stay disjoint and complete.
``known``: discovery's answer, given instead of run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from hilos import scanners, scanstate, staged
from hilos.errors import UsageError
from hilos.results import HostResult, ScanHostResult, ScanProgress, ScanSummary, Written
from hilos.sweep import MAX_V6_ADDRESSES, Sweeper, SweepProgress
from hilos.targets import TargetSpace, parse_targets
from hilos.validate import MAX_RETRIES

__all__ = ["MAX_RETRIES", "MAX_V6_ADDRESSES", "Scan", "ScanProgress", "ScanSummary", "scan"]

ScanType = Literal["connect", "syn", "udp"]


class Scan:
    """One scan run; see the module docstring. Iterate once; `cancel()` from any thread stops it,
    `drain()` then returns what was found but not yielded, unfinished hosts marked
    ``complete=False``. `stats` is for a progress line, `summary` for the closing one."""

    def __init__(
        self,
        targets: TargetSpace | Iterable[str] | str,
        ports: Sequence[int],
        *,
        scan_type: ScanType = "connect",
        discovery: bool = True,
        rate: float | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        threads: int | None = None,
        seed: int | None = None,
        randomize: bool = False,
        shard: tuple[int, int] | None = None,
        banners: bool = False,
        show_all: bool = False,
        on_notice: Callable[[str], None] | None = None,
        known: Sequence[HostResult] | None = None,
        udp_ports: Sequence[int] = (),
        resume: Mapping[str, Any] | None = None,
        written: Written | None = None,
    ) -> None:
        if scan_type not in ("connect", "syn", "udp"):
            raise UsageError(f"unknown scan type {scan_type!r} (connect, syn or udp)")
        if not isinstance(targets, TargetSpace):
            targets = parse_targets(targets, on_warning=on_notice, strict=True)
        scanners.check(targets, ports, scan_type, discovery, retries, threads)
        # UDP beside a TCP scan (nmap -sS -sU): `udp_ports`; a UDP scan alone: `ports`.
        self.ports, self.udp_ports = tuple(ports), tuple(udp_ports)
        self.targets = targets
        self.scan_type: ScanType = scan_type
        self.discovery = discovery
        self.rate, self.timeout, self.threads = rate, timeout, threads
        # Connect scans resend twice by default: a resend costs only the ports still silent,
        # and a loaded path then still gives exact states.
        self.retries = retries if retries is not None else (1 if scan_type == "syn" else 2)
        self._udp_retries = retries
        self._sweep_retries = retries
        self.seed = seed if seed is not None else 0
        self.shard = shard
        if randomize and shard is None:
            self.shard = (1, 1)  # the keyed random walk over hosts x ports, all of it
        self._user_shard = shard is not None
        self.banners = banners
        self.show_all = show_all
        self.on_notice = self._udp_notice = on_notice
        # A checkpoint's scan state (hilos.scanstate): discovery's answer and the scans' own.
        self._discovery_state = (resume or {}).get("discovery")  # saved while discovery ran
        self._resume, self._written = (resume if resume and "stages" in resume else None), written
        self._known = scanstate.known(self._resume) if self._resume is not None else known
        self._scan_hosts: list[str] | None = None  # the hosts given to the scan (None: targets)
        self.keep_state = False  # set when a checkpoint takes `snapshot()` (the CLI's)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._sweeper: Sweeper | None = None
        self._sweep_state: SweepProgress | None = None
        self._scanner: Any = None
        self._grabber: Any = None
        self._found: dict[str, HostResult] = {}  # discovery's up hosts, by address
        self._down: list[HostResult] = []
        self._yielded: set[str] = set()
        self._phase = "discovery"
        self._up = 0
        self._discovered_up = 0
        self._discovery_done = False
        self._started = 0.0
        self._ended: float | None = None
        self._used = False

    # ---------------------------------------------------------------- public

    @property
    def stats(self) -> ScanProgress:
        scanner = self._scanner
        up = max(self._up, self._discovered_up)
        sw = self._sweep_state
        # While discovery runs (a connect scan already probes the hosts found), its progress
        # over the address space says how far along the scan is.
        if sw is not None and not self._discovery_done and not self._cancel.is_set():
            return ScanProgress("discovery", sw.done, sw.total, max(up, sw.up))
        if scanner is not None:
            st = scanner.stats
            return ScanProgress("scan", st.done, st.total or None, up, st.sent or None)
        return ScanProgress(self._phase, 0, None, up)

    @property
    def summary(self) -> ScanSummary:
        end = self._ended if self._ended is not None else time.monotonic()
        return ScanSummary(self._probed_now(), self._up, end - (self._started or end))

    @property
    def drops(self) -> int | None:
        """Answers the kernel dropped for a full receive buffer (a raw scan, once it ended)."""
        return getattr(self._scanner, "drops", None)

    def ready(self) -> bool:
        """Whether the next result is already waiting (so a writer may hold its flush). Only
        the SYN scan says so; banners and the other scanners always answer False."""
        scanner = self._scanner
        if scanner is None or self.banners or not hasattr(scanner, "ready"):
            return False
        return bool(scanner.ready())

    def cancel(self) -> None:
        """Stop discovery, the scan and banner reads; the iterator ends soon after."""
        self._cancel.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._scanner is not None:
            self._scanner.cancel()
        if self._grabber is not None:
            self._grabber.cancel()

    def drain(self) -> list[ScanHostResult]:
        """After `cancel()`: every host with something found that was not yielded yet. Hosts
        whose scan had not finished carry ``complete=False`` and only the ports answered."""
        out: list[ScanHostResult] = []
        if self._grabber is not None:
            out.extend(self._finish(h) for h in self._grabber.pending())
        partial = list(self._scanner.partial()) if self._scanner is not None else []
        out.extend(replace(self._finish(h), complete=False) for h in partial)
        # Hosts discovery found up whose scan had not answered anything yet: still up, unfinished.
        seen = {h.host for h in out} | self._yielded
        if self._sweeper is not None:
            for found_late in self._sweeper.drain():
                self._discovered(found_late)
        for addr, found in self._found.items():
            if addr not in seen:
                blank = ScanHostResult(addr, "up", found.reason, (), found.rtt_ms)
                out.append(replace(self._finish(blank), complete=False))
        result: list[ScanHostResult] = []
        for h in out:
            if h.host not in self._yielded:
                self._yielded.add(h.host)
                self._up += h.status == "up"
                result.append(h)
        self._ended = time.monotonic()
        return result

    def __iter__(self) -> Iterator[ScanHostResult]:
        if self._used:
            raise RuntimeError("a Scan runs once; make a new one")
        self._used = True
        self._started = time.monotonic()
        try:
            for host in self._run():
                host = self._finish(host)
                self._yielded.add(host.host)
                self._up += host.status == "up"
                yield host
            if self.show_all and not self._cancel.is_set():
                for h in scanstate.unwritten(self._down, self._written):
                    yield self._finish(ScanHostResult(h.host, "down", h.reason, (), h.rtt_ms))
        finally:
            self._ended = time.monotonic()

    # ---------------------------------------------------------------- stages

    def _loopback_only(self) -> bool:
        return all(a.is_loopback and b.is_loopback for a, b in self.targets.iter_ranges())

    def _discovered(self, h: HostResult) -> None:
        if h.status == "up":
            if h.host not in self._found:
                self._found[h.host] = h
                self._discovered_up += 1
        else:
            self._down.append(h)

    def _discover(self) -> Iterator[HostResult]:
        """Discovery's up hosts as they are found (the down ones are kept for show_all)."""
        if not self.discovery:
            return
        if self._loopback_only():  # own addresses need no discovery (nmap: localhost-response)
            for a in self.targets:
                h = HostResult(str(a), "up", "localhost-response")
                self._discovered(h)
                yield h
            self._discovery_done = True
            return
        if self._known is not None:  # one discovery pass shared by a job's chunks
            for h in self._known:
                self._discovered(h)
            self._discovery_done = True
            yield from (h for h in self._known if h.status == "up")
            return

        def on_progress(p: SweepProgress) -> None:
            self._sweep_state = p

        sweeper = Sweeper(
            self.targets,
            rate=self.rate,
            timeout=self.timeout,
            retries=self._sweep_retries,
            all_hosts=self.show_all,
            on_progress=on_progress,
            on_notice=self.on_notice,
            resume=self._discovery_state,
        )
        self._sweeper = sweeper
        if self._cancel.is_set():
            sweeper.cancel()
        for h in sweeper:
            self._discovered(h)
            if h.status == "up":
                yield h
        self._discovery_done = not sweeper.cancelled

    def _run(self) -> Iterator[ScanHostResult]:
        if self.discovery and (self.scan_type == "udp" or self.udp_ports):
            scanners.preload_udp()  # numpy (~0.1 s to import) loads while discovery runs
        live = self._discover()
        full_walk = self.discovery and self._user_shard and not self._loopback_only()
        raw = self.scan_type != "connect" or bool(self.udp_ports)
        scanner: Any = None
        if self._resume is not None:
            scanner = self._resumed(live)
        elif raw and not full_walk and self._sweeping():
            # Raw scans take their host table whole: the first pass's hosts go first.
            scanner = staged.start(live, self._first_answers_due, self._cancel, self._scanner_of)
            live = iter(())
        if scanner is None and (full_walk or raw):
            # A user's shard needs discovery's whole answer to filter the walk over the space.
            for _ in live:
                if self._cancel.is_set():
                    return
        if self._cancel.is_set():
            return
        self._phase = "scan"
        scanner = scanner or self._make_scanner(live, full_walk)
        self._scanner = scanner
        if self._cancel.is_set():
            scanner.cancel()
        stream: Iterable[ScanHostResult] = scanner.results()
        if self.banners:
            from hilos.services import BannerGrabber

            self._grabber = BannerGrabber()
            stream = self._grabber.enrich(stream)
        yield from stream

    def _sweeping(self) -> bool:  # not -Pn, own addresses, or a shared answer
        return self.discovery and not self._loopback_only() and self._known is None

    def _first_answers_due(self) -> float | None:
        return self._sweeper.first_answers_due() if self._sweeper is not None else None

    def _scanner_of(self, hosts: list[str]) -> Any:
        return self._make_scanner(iter(()), False, hosts)

    def snapshot(self, written: Written) -> dict[str, Any] | None:
        """The scan's state for a checkpoint (hilos.scanstate), or None while discovery runs
        or when a scan cannot say where it stands."""
        sc, sweeper = self._scanner, self._sweeper
        if sc is None and sweeper is not None and not self._discovery_done:
            state = sweeper.snapshot()  # discovery writes no host
            return None if state is None else {"discovery": state}
        if sc is None or (self.discovery and not self._discovery_done):
            return None
        stages = sc.stages() if isinstance(sc, staged.Staged) else [(self._scan_hosts, sc)]
        found = [*self._found.values(), *self._down] if self.discovery else None
        return scanstate.snapshot(found, stages, written)

    def _resumed(self, live: Iterator[HostResult]) -> Any:
        """The scans of a checkpoint's state, each going on from where it stood."""
        for _ in live:  # discovery's saved answer
            pass
        plan = scanstate.stages(self._resume or {})
        states = iter([state for _hosts, state in plan])

        def make(hosts: list[str] | None) -> Any:
            return self._make_scanner(iter(()), False, hosts, next(states))

        if len(plan) == 1:
            return make(plan[0][0])
        return staged.Staged(make, plan[0][0] or [], lambda: plan[1][0] or [])

    def _make_scanner(
        self,
        live: Iterator[HostResult],
        full_walk: bool,
        given: list[str] | None = None,
        state: dict[str, Any] | None = None,
    ) -> Any:
        hosts: Iterable[Any]
        only: frozenset[str] | None = None
        if given is not None:
            hosts = given
        elif not self.discovery:
            hosts = self.targets
        elif full_walk:
            # The walk covers every target; hosts discovery did not find are skipped in it.
            hosts = self.targets
            only = frozenset(self._found)
        elif self.scan_type != "connect" or self.udp_ports:
            hosts = self._scan_hosts = list(self._found)
        else:
            hosts = live  # streamed: ports of the first live hosts go while discovery runs
        opts: dict[str, Any] = {"rate": self.rate, "timeout": self.timeout, "seed": self.seed,
                                "shard": self.shard}  # fmt: skip
        if state is not None or self.keep_state:  # (hilos.scanstate)
            opts.update(resume=state, written=self._written, archive=True)
        # A second scan of late hosts (hilos.staged) does not say the UDP notice again.
        notice, self._udp_notice = self._udp_notice, None
        return scanners.for_scan(
            self.scan_type, hosts, self.ports, self.udp_ports, only=only, retries=self.retries,
            udp_retries=self._udp_retries, threads=self.threads, on_notice=notice, **opts,
        )  # fmt: skip

    # ---------------------------------------------------------------- per host

    def _finish(self, host: ScanHostResult) -> ScanHostResult:
        """Host state as nmap reports it, the port table's names, and the user's host name."""
        if not self.discovery:
            if host.status != "up" or host.reason != "user-set":
                # Built directly: half the cost of replace(), 65,536 times at a -Pn /16.
                h = host
                host = ScanHostResult(h.host, "up", "user-set", h.ports, h.rtt_ms, h.hostname,
                                      h.complete)  # fmt: skip
        else:
            found = self._found.get(host.host)
            if found is not None and (host.status != "up" or host.reason != found.reason):
                rtt = found.rtt_ms if found.rtt_ms is not None else host.rtt_ms
                host = replace(host, status="up", reason=found.reason, rtt_ms=rtt)
        if self.banners:
            host = scanners.table_names(host)
        if host.hostname is None:
            name = self.targets.hostname(host.host) if self.targets.names else None
            if name is not None:
                host = replace(host, hostname=name)
        return host

    def _probed_now(self) -> int:
        """Addresses actually probed: the whole space once discovery (or the scan) got through
        it, else what discovery had reached, or the hosts the scan touched."""
        if self.discovery and not self._loopback_only():
            if self._discovery_done:
                return self.targets.size
            return self._sweeper.probed if self._sweeper is not None else 0
        if not self._cancel.is_set() and self._ended is not None:
            return self.targets.size
        st = self._scanner.stats if self._scanner is not None else None
        if st is None:
            return 0
        return min(self.targets.size, max(int(st.hosts_done), len(self._yielded)))


#: ``scan(targets, ports, **options)`` sets up a scan (a `Scan`; iterate it to run it). Bad input
#: raises UsageError up front: no targets or ports, retries above MAX_RETRIES, an IPv6 space
#: above MAX_V6_ADDRESSES, a connect scan's `threads` beyond the descriptor limit.
scan = Scan
