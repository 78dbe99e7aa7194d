"""What every fake service shares: idle timeout, buffering, line handling."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from hilos.lab.services.spec import Service


# Connection protocols


class Context:
    """State shared by every connection of one server."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle = idle_timeout
        self.conns: set[Conn] = set()
        self.started = time.time()
        self.next_id = 8  # MySQL connection ids; real servers start low too


class Conn(asyncio.Protocol):
    """Base: idle timeout (checked lazily, so data costs one clock read), buffering, tracking."""

    idle_timeout = True
    max_buffer = 65536

    def __init__(self, ctx: Context, service: Service) -> None:
        self.ctx = ctx
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closing = False
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.ctx.conns.add(self)
        if self.idle_timeout:
            self.last = self.loop.time()
            self.timer = self.loop.call_later(self.ctx.idle, self._check_idle)
        self.start()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.ctx.conns.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        if self.closing:
            return
        self.buf += data
        self.feed()
        if len(self.buf) > self.max_buffer and not self.closing:
            self.overflow()

    def eof_received(self) -> bool | None:
        return None  # the client is done: close our side too

    def _check_idle(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        remaining = self.last + self.ctx.idle - self.loop.time()
        if remaining > 0:
            self.timer = self.loop.call_later(remaining, self._check_idle)
        else:
            self.abort()

    # helpers for subclasses

    def start(self) -> None:
        """Called once connected (after the TLS handshake): send the greeting, if any."""

    def feed(self) -> None:
        """Consume what is complete in self.buf."""
        self.buf.clear()

    def overflow(self) -> None:
        self.close()

    def send(self, data: bytes | memoryview) -> None:
        # is_closing() is already true when the peer reset us but connection_lost() is still
        # queued: writing then only makes asyncio log "socket.send() raised exception."
        if not self.closing and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def say(self, *lines: str) -> None:
        self.send("".join(line + "\r\n" for line in lines).encode("utf-8", "replace"))

    def close(self) -> None:
        """Close after what was written has been sent."""
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def peer_host(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return str(peer[0]) if peer else "unknown"


class LineConn(Conn):
    """A line-based text protocol (CRLF or LF)."""

    max_line = 4096

    def feed(self) -> None:
        buf = self.buf
        while not self.closing:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > self.max_line:
                    self.line_too_long()
                return
            line = bytes(buf[:end]).rstrip(b"\r").decode("latin-1")
            del buf[: end + 1]
            self.line(line)

    def line(self, line: str) -> None:
        raise NotImplementedError

    def line_too_long(self) -> None:
        self.close()
