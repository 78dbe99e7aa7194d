"""Resumable scans: a job cut into chunks (shards of the keyed walk), a checkpoint after each.

A chunked job runs discovery once, then chunks of about a second of probes each; every
completed chunk is merged (one answer per host, proto and port) and saved in an atomic
checkpoint, so `hilos scan --resume FILE` continues after `kill -9` having lost at most the
chunk in flight. hilos.cluster runs the same chunks on Dask workers.
"""

from __future__ import annotations

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
