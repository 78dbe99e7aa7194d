"""TLS over memory BIOs (so a refused handshake gets its alert) around any service."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import subprocess
import tempfile
from typing import Any

from hilos.errors import LabError
from hilos.lab.services.base import Conn, Context
from hilos.lab.services.spec import Service

TLS_KINDS = frozenset({"https", "tls"})  # kinds served inside TLS


class TlsConn(Conn):
    """Server-side TLS over memory BIOs, carrying an inner protocol once the handshake is done.

    Not asyncio's own TLS (create_server(ssl=...)): when a handshake fails it drops the alert
    OpenSSL wrote, and scanners recognise TLS by that alert (nmap's SSLSessionReq probe is an
    SSLv3 hello that every modern server refuses with a protocol_version alert).
    """

    def __init__(self, ctx: Context, service: Service, tls: ssl.SSLContext, inner: Conn) -> None:
        super().__init__(ctx, service)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = tls.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.inner = inner
        self.wrapped = False

    def feed(self) -> None:
        self.incoming.write(self.buf)
        self.buf.clear()
        if not self.wrapped:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                return
            except ssl.SSLError:
                self.flush()  # the alert says why
                self.close()
                return
            self.wrapped = True
            self.flush()
            self.inner.connection_made(_TlsTransport(self))
        while not self.closing:
            try:
                data = self.obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the client's close_notify
                self.tls_close()
                return
            except ssl.SSLError:
                self.flush()
                self.close()
                return
            if not data:
                break
            self.inner.data_received(data)
        self.flush()

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.send(data)

    def tls_write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            return
        try:
            self.obj.write(data)
        except ssl.SSLError:
            self.abort()
            return
        self.flush()

    def tls_close(self) -> None:
        if self.closing:
            return
        with contextlib.suppress(ssl.SSLError):
            self.obj.unwrap()  # queues our close_notify; SSLWantReadError while the peer's is due
        self.flush()
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.wrapped:
            self.inner.connection_lost(exc)


class _TlsTransport(asyncio.Transport):
    """What the inner protocol of a TlsConn writes to: plaintext in, TLS records out."""

    def __init__(self, conn: TlsConn) -> None:
        super().__init__()
        self._conn = conn

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._conn.tls_write(data)

    def close(self) -> None:
        self._conn.tls_close()

    def abort(self) -> None:
        self._conn.abort()

    def is_closing(self) -> bool:
        return self._conn.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._conn.obj
        raw = self._conn.transport
        return raw.get_extra_info(name, default) if raw is not None else default


def make_tls_contexts() -> dict[str, ssl.SSLContext]:
    """Server contexts for https and tls with one fresh self-signed RSA certificate (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LabError(
            "the openssl command is needed for https/tls services (apt-get install openssl)"
        )
    with tempfile.TemporaryDirectory(prefix="hilos-labsvc-") as tmp:
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        cmd = [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/CN=lab.example",
            "-addext",
            "subjectAltName=DNS:lab.example,DNS:*.lab.example",
            "-keyout",
            key,
            "-out",
            cert,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LabError(f"openssl could not make a certificate: {exc}") from exc
        if proc.returncode != 0:
            detail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
            raise LabError(f"openssl could not make a certificate: {detail[0]}")
        contexts = {}
        for kind in TLS_KINDS:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            contexts[kind] = ctx
    contexts["https"].set_alpn_protocols(["http/1.1"])
    return contexts
