"""Dask's scheduler and a hilos worker, started in this process through distributed's API.

The worker advertises one SCANNER resource and runs one thread: one scan task at a time,
so a worker's --rate is the rate its machine sends at. Both run until stopped (Ctrl-C,
SIGTERM), and both refuse plain tcp:// unless the caller allowed it (hilos.cluster.security).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from hilos.cluster.security import Address, local_address_toward
from hilos.cluster.tasks import WORKER

__all__ = ["RESOURCE", "run_scheduler", "run_worker"]

RESOURCE = "SCANNER"


def run_scheduler(
    address: Address, security: Any, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve the scheduler on `address` until stopped."""

    async def main() -> None:
        from distributed import Scheduler

        async with Scheduler(
            host=address.host,
            port=address.port,
            protocol=address.protocol,
            security=security,
            dashboard=False,
            dashboard_address=None,
        ) as scheduler:
            if on_ready is not None:
                on_ready(str(scheduler.address))
            await scheduler.finished()

    asyncio.run(main())


def run_worker(
    address: Address,
    security: Any,
    *,
    name: str | None = None,
    rate: float | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Join the scheduler at `address` as a scanner worker until stopped. It listens for its
    peers on this machine's address toward the scheduler (never on every interface)."""
    WORKER["rate"] = rate
    host = local_address_toward(address)

    async def main() -> None:
        from distributed import Worker

        async with Worker(
            str(address),
            nthreads=1,
            name=name,
            resources={RESOURCE: 1},
            security=security,
            host=host,
            protocol=address.protocol,
            memory_limit=0,
            dashboard=False,
        ) as worker:
            if on_ready is not None:
                on_ready(str(worker.address))
            await worker.finished()

    asyncio.run(main())
