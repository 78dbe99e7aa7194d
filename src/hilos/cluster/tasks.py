"""What a cluster worker runs: chunks of a job (scan or sweep), capped at the worker's --rate.

Dask imports this module on the worker by name (the functions are pickled by reference), so
it stays small and free of the command line. A task may run twice; the client counts a chunk
once (hilos.resume.Merger).
"""

from __future__ import annotations

from hilos.resume.chunks import Discovery, run_chunk
from hilos.resume.job import ChunkResult, JobSpec

__all__ = ["WORKER", "chunk_task"]

#: This process's worker settings, set by `hilos cluster worker` before it joins: "rate" caps
#: every task's probes a second (None: the job's own rate).
WORKER: dict[str, float | None] = {"rate": None}


def _name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return "local"


def chunk_task(spec: JobSpec, found: Discovery, number: int, count: int) -> ChunkResult:
    """Chunk `number` of `count` of the job (a shard of its keyed walk; for a scan's
    discovery, a sweep chunk)."""
    return run_chunk(spec, found, number, count, rate=WORKER["rate"], worker=_name())
