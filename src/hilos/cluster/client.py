"""The client side: a ChunkedJob's chunks as Dask tasks on the cluster's scanner workers.

Each chunk is one task with a deterministic key (the job's hash and the chunk number), so
submitting it again (a resumed client) finds the same task; each needs the SCANNER resource, so
a worker runs one at a time. A worker that dies mid-chunk costs that chunk, which the scheduler
reruns elsewhere; the client counts each chunk once. Results stream back as chunks finish.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from hilos.cluster.daemons import RESOURCE
from hilos.cluster.security import Address
from hilos.cluster.tasks import chunk_task
from hilos.errors import HilosError
from hilos.resume.chunks import Discovery, discovered, discovery_sweep, needs_discovery
from hilos.resume.job import ChunkResult, JobSpec, chunk_count

__all__ = ["CHUNKS_PER_WORKER", "DaskExecutor"]

#: At least this many chunks per worker: the last round leaves fewer workers idle, and a lost
#: worker costs little.
CHUNKS_PER_WORKER = 3


class ClusterError(HilosError):
    """The cluster could not be reached or refused the client."""


class DaskExecutor:
    """Runs a job's discovery and chunks on the scheduler at `address` (see module docstring)."""

    chunk_seconds = 2.0

    def __init__(self, address: Address, security: Any, timeout: float = 15.0) -> None:
        from distributed import Client

        make: Any = Client  # untyped in distributed: Any at the boundary
        try:
            self.client: Any = make(
                str(address), security=security, timeout=timeout, set_as_default=False
            )
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot join the cluster at {address}: {exc}") from None
        self._futures: list[Any] = []
        self._lock = threading.Lock()
        self._cancelled = threading.Event()

    def _key(self, spec: JobSpec, what: str) -> str:
        return f"hilos-{spec.digest[:24]}-{what}"

    def workers(self) -> int:
        info = self.client.scheduler_info()
        return len(info.get("workers", {}))

    def min_chunks(self) -> int:
        return CHUNKS_PER_WORKER * max(self.workers(), 1)

    def discover(self, spec: JobSpec) -> Discovery:
        """The scan's discovery as sweep chunks over the workers (a pass on one machine would
        cap the whole job at one machine's rate)."""
        if not needs_discovery(spec):
            return Discovery()
        sweep = discovery_sweep(spec)
        count = max(self.min_chunks(), chunk_count(sweep, spec.space().size, self.chunk_seconds))
        try:
            return discovered(self._run(spec, sweep, Discovery(), count, range(1, count + 1), "d"))
        except ClusterError as exc:
            raise ClusterError(f"discovery: {exc}") from None

    def chunks(
        self, spec: JobSpec, found: Discovery, count: int, numbers: Sequence[int]
    ) -> Iterator[ChunkResult]:
        return self._run(spec, spec, found, count, numbers, "s")

    def _run(
        self,
        job: JobSpec,
        spec: JobSpec,
        found: Discovery,
        count: int,
        numbers: Iterable[int],
        phase: str,
    ) -> Iterator[ChunkResult]:
        """Chunks `numbers` of `count` of `spec` as tasks keyed by the job, phase and number;
        each result as its task completes. Only as many tasks as workers are out at a time, the
        next submitted as one finishes: a worker that is free takes the next chunk (tasks
        handed out all at once queue unevenly, and the slowest queue sets the time)."""
        from distributed import as_completed

        stream: Any = as_completed  # untyped in distributed
        shared = self.client.scatter(found, broadcast=False, hash=True)
        todo = list(numbers)[::-1]

        def submit() -> Any:
            k = todo.pop()
            future = self.client.submit(
                chunk_task, spec, shared, k, count,
                key=self._key(job, f"{phase}{count}-{k}"), resources={RESOURCE: 1}, pure=False,
            )  # fmt: skip
            with self._lock:
                self._futures.append(future)
            return future

        with self._lock:
            self._futures = []
        first = [submit() for _ in range(min(len(todo), max(self.workers(), 1)))]
        if self._cancelled.is_set():
            raise KeyboardInterrupt
        try:
            running = stream(first, with_results=True, loop=self.client.loop)
            for future, result in running:
                with self._lock:
                    self._futures.remove(future)
                if todo and not self._cancelled.is_set():
                    running.add(submit())
                yield result
                if self._cancelled.is_set():
                    raise KeyboardInterrupt
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except Exception as exc:  # KilledWorker, a lost scheduler: one line, exit 1
            raise ClusterError(f"cluster: {type(exc).__name__}: {exc}") from exc

    def cancel(self) -> None:
        """Cancel every task of this job on the cluster (a running chunk ends on its worker;
        its result is dropped)."""
        self._cancelled.set()
        with self._lock:
            futures = list(self._futures)
        if futures:
            with contextlib.suppress(Exception):
                self.client.cancel(futures, force=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()
