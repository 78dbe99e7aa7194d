"""One process serving every listener of a spec with asyncio; `python -m hilos.lab.services`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from hilos.errors import HilosError, LabError, from_oserror
from hilos.lab.daemon import serve_until_stopped
from hilos.lab.services.base import Conn, Context
from hilos.lab.services.ftp import FtpConn
from hilos.lab.services.hostile import EchoConn, EscapeConn, FloodConn, SilentConn
from hilos.lab.services.http import ApacheConn, ElasticConn, NginxConn
from hilos.lab.services.imap import ImapConn
from hilos.lab.services.mysql import MysqlConn
from hilos.lab.services.pop3 import Pop3Conn
from hilos.lab.services.postgresql import PostgresConn
from hilos.lab.services.redis import RedisConn
from hilos.lab.services.smtp import SmtpConn
from hilos.lab.services.spec import Service, Spec, hostport, load_spec
from hilos.lab.services.ssh import SshConn
from hilos.lab.services.tls import TLS_KINDS, TlsConn, make_tls_contexts
from hilos.wire.limits import raise_nofile_limit

BACKLOG = 4096  # the kernel caps it at net.core.somaxconn; a scanner opens hundreds at once


_PROTOCOLS: dict[str, type[Conn]] = {
    "ssh": SshConn,
    "http": NginxConn,
    "https": ApacheConn,
    "tls": SmtpConn,
    "ftp": FtpConn,
    "smtp": SmtpConn,
    "pop3": Pop3Conn,
    "imap": ImapConn,
    "mysql": MysqlConn,
    "postgresql": PostgresConn,
    "redis": RedisConn,
    "elasticsearch": ElasticConn,
    "escape": EscapeConn,
    "flood": FloodConn,
    "silent": SilentConn,
    "echo": EchoConn,
}


_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux value; Python does not export it


def _listen(service: Service) -> socket.socket:
    family = socket.AF_INET6 if ":" in service.addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        with contextlib.suppress(OSError):
            # Lets us bind an IPv6 address still in duplicate address detection ("tentative")
            # right after the lab adds it, instead of failing with EADDRNOTAVAIL.
            sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
        sock.bind((service.addr, service.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        where = f"listening on {hostport(service.addr, service.port)} ({service.kind})"
        raise from_oserror(exc, where) from exc
    return sock


def _raise_fd_limit(needed: int) -> None:
    target = raise_nofile_limit()
    if needed > target:
        raise LabError(
            f"{needed} listeners need more file descriptors than the limit {target} (ulimit -n)"
        )


class LabServer:
    """Every listener of a spec in the running event loop.

    >>> async def demo(spec: Spec) -> None:
    ...     server = LabServer(spec)
    ...     await server.start()    # all bound and serving
    ...     await server.close()
    """

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._ctx = Context(spec.idle_timeout)
        self._servers: list[asyncio.AbstractServer] = []
        self._tls: dict[str, ssl.SSLContext] = {}

    async def start(self) -> None:
        """Bind every listener and start serving; on any failure close what was bound and raise."""
        services = self.spec.services
        _raise_fd_limit(len(services) + 256)
        if any(s.kind in TLS_KINDS for s in services):
            self._tls = make_tls_contexts()
        loop = asyncio.get_running_loop()
        try:
            for service in services:
                sock = _listen(service)
                try:
                    server = await loop.create_server(
                        self._factory(service), sock=sock, backlog=BACKLOG
                    )
                except BaseException:
                    sock.close()
                    raise
                self._servers.append(server)
        except BaseException:
            await self.close()
            raise

    def _factory(self, service: Service) -> Callable[[], asyncio.Protocol]:
        ctx, cls = self._ctx, _PROTOCOLS[service.kind]
        if cls is RedisConn:
            store: dict[bytes, bytes] = {}  # one keyspace per listener
            return lambda: RedisConn(ctx, service, store)
        if service.kind in TLS_KINDS:
            tls = self._tls[service.kind]
            return lambda: TlsConn(ctx, service, tls, cls(ctx, service))
        return lambda: cls(ctx, service)

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._ctx.conns)

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        for server in self._servers:
            server.close()
        for conn in list(self._ctx.conns):
            conn.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Peers resetting, failing TLS handshakes or timing out are normal here; bugs are not."""
    exc = context.get("exception")
    if isinstance(exc, OSError):
        return
    if exc is None:
        detail = str(context.get("message", ""))
    else:
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    print(f"labsvc: internal error: {detail}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hilos.lab.services SPEC.json``: serve until SIGTERM; 0 when stopped, else 1."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m hilos.lab.services SPEC.json", file=sys.stderr)
        return 2
    try:
        spec = load_spec(args[0])
        asyncio.run(
            serve_until_stopped(
                LabServer(spec), lambda: print("ready", flush=True), _quiet_exception_handler
            )
        )
    except HilosError as exc:
        print(f"labsvc: error: {exc}", file=sys.stderr)
        return 1
    except ssl.SSLError as exc:
        print(f"labsvc: error: TLS setup failed: {exc}", file=sys.stderr)
        return 1
    return 0
