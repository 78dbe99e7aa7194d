"""How the lab's server processes (services, DNS) run: start, say ready, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any, Protocol


class Served(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


async def serve_until_stopped(
    server: Served,
    ready: Callable[[], None],
    exception_handler: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None] | None = None,
) -> None:
    """Start `server`, call `ready`, then serve until SIGTERM or SIGINT; close it either way."""
    loop = asyncio.get_running_loop()
    if exception_handler is not None:
        loop.set_exception_handler(exception_handler)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        ready()
        await stop.wait()
    finally:
        await server.close()
