"""Running a chunked job: discovery once, then the chunks, on this machine or on an executor.

`ChunkedJob` drives any `Executor` (this machine's `LocalExecutor`, or hilos.cluster's Dask
one): it runs discovery once, cuts the job into chunks of about a second of probes, counts
each chunk when it completes, merges, and keeps the checkpoint current. `final()` is the
result as a one-machine scan reports it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from hilos.results import ScanHostResult
from hilos.resume.checkpoint import Checkpoint
from hilos.resume.chunks import (
    Discovery,
    Merger,
    as_scan_host,
    chunk_numbers,
    named,
    run_chunk,
    run_discovery,
)
from hilos.resume.job import CHUNK_SECONDS, ChunkResult, JobSpec, chunk_count, measured_pace

__all__ = ["ChunkedJob", "Executor", "JobProgress", "LocalExecutor"]


class Executor(Protocol):
    """Where chunks run. `chunks()` yields each chunk once it is complete, in any order."""

    chunk_seconds: float

    def discover(self, spec: JobSpec) -> Discovery: ...

    def chunks(
        self, spec: JobSpec, found: Discovery, count: int, numbers: Sequence[int]
    ) -> Iterator[ChunkResult]: ...

    def workers(self) -> int: ...

    def min_chunks(self) -> int: ...

    def cancel(self) -> None: ...


class LocalExecutor:
    """This machine runs the chunks one after another."""

    chunk_seconds = CHUNK_SECONDS
    #: Chunks are sized from the rate this machine's discovery pass measured (the chunks
    #: run here too; a cluster's workers have their own rates).
    measures_pace = True

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._scan: Any = None  # the chunk's Scan (a sweep's Sweeper)
        #: What the chunk in flight found before an interrupt (not a counted chunk: the job
        #: writes it as unfinished, a resumed run redoes the chunk).
        self.partial: list[ScanHostResult] = []

    def discover(self, spec: JobSpec) -> Discovery:
        return run_discovery(spec, cancelled=self._cancel.is_set)

    def chunks(
        self, spec: JobSpec, found: Discovery, count: int, numbers: Sequence[int]
    ) -> Iterator[ChunkResult]:
        for k in numbers:
            if self._cancel.is_set():
                raise KeyboardInterrupt
            self.partial = []
            try:
                result = run_chunk(spec, found, k, count, on_scan=self._started, sink=self.partial)
            except BaseException:
                self.cancel()
                self._drain()
                raise
            if self._cancel.is_set():  # cut short: not a complete chunk, not counted
                self._drain()
                raise KeyboardInterrupt
            self.partial = []
            yield result

    def _started(self, scan: Any) -> None:
        self._scan = scan
        if self._cancel.is_set():
            scan.cancel()

    def _drain(self) -> None:
        """The cancelled chunk's results not yielded yet join `partial`."""
        if self._scan is not None:
            self.partial.extend(as_scan_host(h) for h in self._scan.drain())

    def workers(self) -> int:
        return 1

    def min_chunks(self) -> int:
        return 1

    def cancel(self) -> None:
        self._cancel.set()
        if self._scan is not None:
            self._scan.cancel()


@dataclass(frozen=True, slots=True)
class JobProgress:
    """Chunks `done` of `total` (None before discovery ends), hosts `up` so far, `workers`
    connected, and each worker's probes a second over its chunks."""

    done: int
    total: int | None
    up: int
    workers: int
    pps: Mapping[str, float] = field(default_factory=dict)


class ChunkedJob:
    """One job through an executor, resumable from its checkpoint (see the module docstring).

    `on_hosts` gets each host as soon as every one of its ports is in (written to the outputs
    by the caller, which returns each output file's length after them: the checkpoint pairs
    them with the hosts written). `run()` returns when every chunk is counted;
    KeyboardInterrupt leaves the checkpoint saved. `final()` is what is left to write."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        executor: Executor,
        *,
        keep_checkpoint: bool = True,
        on_progress: Callable[[JobProgress], None] | None = None,
        on_hosts: Callable[[list[ScanHostResult]], Mapping[str, int]] | None = None,
    ) -> None:
        self.ckpt = checkpoint
        self.spec = checkpoint.spec
        self.executor = executor
        self.keep = keep_checkpoint
        self.on_progress = on_progress
        self.on_hosts = on_hosts
        self.started = time.monotonic()
        self._work: dict[str, list[float]] = {}  # worker -> [probes, seconds]
        self._lock = threading.Lock()

    @property
    def merger(self) -> Merger:
        return self.ckpt.merger

    def progress(self) -> JobProgress:
        with self._lock:
            pps = {w: p / s for w, (p, s) in self._work.items() if s > 0}
            found = self.ckpt.found
            up = len(found.up) if found is not None and found.ran else self.merger.count()
            done = len(self.merger.done)
        return JobProgress(done, self.ckpt.count, up, self.executor.workers(), pps)

    def run(self) -> None:
        ckpt = self.ckpt
        try:
            pace = None
            if ckpt.found is None:
                started = time.monotonic()
                ckpt.found = self.executor.discover(self.spec)
                ckpt.changed()
                if ckpt.found.ran and getattr(self.executor, "measures_pace", False):
                    seconds = time.monotonic() - started
                    pace = measured_pace(self.spec, self.spec.space().size, seconds)
            if ckpt.count is None:
                live = len(ckpt.found.up) if ckpt.found.ran else self.spec.space().size
                sized = chunk_count(self.spec, live, self.executor.chunk_seconds, pace)
                ckpt.count = max(sized, self.executor.min_chunks())
                ckpt.changed()
            self._save()
            todo = chunk_numbers(ckpt.count, ckpt.merger.done)
            for chunk in self.executor.chunks(self.spec, ckpt.found, ckpt.count, todo):
                self._count(chunk)
                self.tick()
                self._report()
        except BaseException:
            self.executor.cancel()
            self._keep_partial()
            self._save()
            raise
        ckpt.finished = True
        self._save()

    def _count(self, chunk: ChunkResult) -> None:
        """Merge a finished chunk; hand the hosts it completed to `on_hosts`."""
        ckpt, order = self.ckpt, self.spec.ports
        with self._lock:
            if not ckpt.merger.add(chunk):
                return
            work = self._work.setdefault(chunk.worker, [0.0, 0.0])
            work[0] += chunk.probes
            work[1] += chunk.elapsed
            ckpt.changed()
            ready = [
                named(ckpt.merger.host(h.host, order), ckpt.names)
                for h in chunk.hosts
                if h.host not in ckpt.merger.written and ckpt.merger.complete(h.host, len(order))
            ]
        if ready and self.on_hosts is not None:
            offsets = self.on_hosts(ready)
            with self._lock:
                ckpt.merger.drop(ready)
                ckpt.offsets = dict(offsets)
                ckpt.changed()

    def _keep_partial(self) -> None:
        """An interrupted run keeps what the chunk in flight found (written as unfinished, as
        a one-piece scan writes it); the chunk is not counted, so a resumed run redoes it."""
        with self._lock:
            for h in getattr(self.executor, "partial", ()):
                self.merger.add_host(h)
            self.ckpt.changed()

    def _save(self) -> None:
        if self.keep:
            with self._lock:
                self.ckpt.save()

    def tick(self) -> None:
        """Write the checkpoint if it changed and the last write is old enough (any thread)."""
        if self.keep:
            with self._lock:
                self.ckpt.tick()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress())

    def complete(self) -> bool:
        return self.ckpt.count is not None and len(self.merger.done) >= self.ckpt.count

    def up(self) -> int:
        """Hosts up in the whole job so far (written or not)."""
        found = self.ckpt.found or Discovery()
        with self._lock:
            hosts = {h.host for h in self.merger.hosts() if h.status == "up"}
            hosts |= {h for h, status in self.merger.written.items() if status == "up"}
        return len(hosts | {h.host for h in found.up})

    def final(self) -> list[ScanHostResult]:
        """The hosts not written yet, as a one-machine scan reports them (discovery's hosts
        without answers, the down ones with --all); marked incomplete when chunks are missing
        (an interrupted run)."""
        found = self.ckpt.found or Discovery()
        with self._lock:
            hosts = self.merger.final(found, self.ckpt.names, self.spec.show_all, self.spec.ports)
            hosts = [h for h in hosts if h.host not in self.merger.written]
        if self.complete():
            return hosts
        return [replace(h, complete=False) for h in hosts]

    def finish(self) -> None:
        """After the outputs are written: a checkpoint the user named stays, saying the job
        finished (a finished scan deletes nothing the user asked to keep); ours goes."""
        if not (self.keep and self.complete()):
            return
        if self.ckpt.options.get("checkpoint_named"):
            self._save()
        else:
            self.ckpt.remove()
