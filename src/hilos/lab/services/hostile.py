"""escape, flood, silent, echo: services that test a scanner's defences."""

from __future__ import annotations

from hilos.lab.services.base import Conn
from hilos.lab.services.catalog import ESCAPE_BANNER, FLOOD_BYTES, FLOOD_PATTERN

_FLOOD_CHUNK = FLOOD_PATTERN * 1024  # 64 KiB; FLOOD_BYTES is an exact multiple of it


# --- escape, flood, silent, echo ------------------------------------------------------------------


class EscapeConn(Conn):
    def start(self) -> None:
        self.send(ESCAPE_BANNER.encode("latin-1") + b"\r\n")


class FloodConn(Conn):
    def start(self) -> None:
        self.sent = 0
        self.paused = False
        self.chunk = memoryview(_FLOOD_CHUNK)
        self.pump()

    def pump(self) -> None:
        while not self.paused and not self.closing:
            if self.transport is None or self.transport.is_closing():
                return
            if self.sent >= FLOOD_BYTES:
                self.close()
                return
            n = min(len(self.chunk), FLOOD_BYTES - self.sent)
            self.sent += n
            self.send(self.chunk[:n])  # may call pause_writing() synchronously

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.last = self.loop.time()  # the client is reading: not idle
        # Not inline: CPython 3.11's _write_ready() calls resume_writing() and then, if the buffer
        # is empty and the transport closing, connection_lost() directly; a close() from in here
        # would schedule a second connection_lost() (AttributeError on a None socket).
        self.loop.call_soon(self.pump)


class SilentConn(Conn):
    idle_timeout = False  # stays until the client closes


class EchoConn(Conn):
    """RFC 862: everything received goes back as it came."""

    def feed(self) -> None:
        self.send(bytes(self.buf))
        self.buf.clear()
