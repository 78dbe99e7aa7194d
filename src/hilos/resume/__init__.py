"""Resumable scans: a job cut into chunks (shards of the keyed walk), a checkpoint after each.

A chunked job runs discovery once, then chunks of about a second of probes each; every
completed chunk is merged (one answer per host, proto and port) and saved in an atomic
checkpoint, so `hilos scan --resume FILE` continues after `kill -9` having lost at most the
chunk in flight. hilos.cluster runs the same chunks on Dask workers. hilos.resume.onepiece is
the default checkpoint of a scan or sweep run in one piece.

The names below are imported when first used: every scan and sweep imports onepiece, and the
chunked machinery (the pipeline with it) would cost a sweep's start some 20 ms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hilos.lazy import lazy_names

if TYPE_CHECKING:
    from hilos.resume.checkpoint import Checkpoint
    from hilos.resume.chunks import Discovery, Merger, run_chunk, run_discovery
    from hilos.resume.job import ChunkResult, JobSpec, chunk_count, space_cidrs
    from hilos.resume.run import ChunkedJob, Executor, JobProgress, LocalExecutor

__all__ = [
    "Checkpoint",
    "ChunkResult",
    "ChunkedJob",
    "Discovery",
    "Executor",
    "JobProgress",
    "JobSpec",
    "LocalExecutor",
    "Merger",
    "chunk_count",
    "run_chunk",
    "run_discovery",
    "space_cidrs",
]

__getattr__ = lazy_names(
    __name__,
    {
        "Checkpoint": "hilos.resume.checkpoint",
        "Discovery": "hilos.resume.chunks",
        "Merger": "hilos.resume.chunks",
        "run_chunk": "hilos.resume.chunks",
        "run_discovery": "hilos.resume.chunks",
        "ChunkResult": "hilos.resume.job",
        "JobSpec": "hilos.resume.job",
        "chunk_count": "hilos.resume.job",
        "space_cidrs": "hilos.resume.job",
        "ChunkedJob": "hilos.resume.run",
        "Executor": "hilos.resume.run",
        "JobProgress": "hilos.resume.run",
        "LocalExecutor": "hilos.resume.run",
    },
)
