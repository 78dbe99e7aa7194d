"""Which cluster addresses hilos accepts, and Dask's Security for the certificate directory.

``tls://`` everywhere, with mutual TLS (every member shows a certificate of the cluster's CA).
``tcp://`` only with ``insecure=True``, and then only on a loopback or lab address (198.18.0.0/15,
fd18::/16): an unencrypted scheduler executes whatever anyone who reaches it sends.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Any

from hilos.cluster.certs import check_certs
from hilos.errors import UsageError

__all__ = ["Address", "local_address_toward", "parse_address", "security_for"]

LAB_NETS = (ipaddress.ip_network("198.18.0.0/15"), ipaddress.ip_network("fd18::/16"))


@dataclass(frozen=True, slots=True)
class Address:
    """A scheduler address: protocol ("tls" or "tcp"), host (an IP literal), port."""

    protocol: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.protocol}://{host}:{self.port}"


def _is_local_or_lab(host: str) -> bool:
    ip = ipaddress.ip_address(host)
    return ip.is_loopback or any(ip in net for net in LAB_NETS)


def parse_address(text: str, *, insecure: bool = False, option: str = "address") -> Address:
    """`tls://ADDR:PORT` (or `tcp://` with `insecure`, loopback or lab only); ADDR is an IP
    literal (no name lookups), IPv6 in brackets."""
    proto, sep, rest = text.partition("://")
    if not sep or proto not in ("tls", "tcp"):
        raise UsageError(f"{option} {text!r}: expected tls://ADDR:PORT")
    host, colon, port_text = rest.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        port = int(port_text)
        ipaddress.ip_address(host)
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected tls://ADDR:PORT with an IP address"
        ) from None
    if not colon or not 0 < port < 65536:
        raise UsageError(f"{option} {text!r}: the port must be 1-65535")
    if proto == "tcp":
        if not insecure:
            raise UsageError(
                f"{option} {text!r}: tcp:// is unencrypted and lets anyone run code on the "
                "cluster; use tls:// with --certs (or --insecure on a loopback or lab address)"
            )
        if not _is_local_or_lab(host):
            raise UsageError(
                f"{option} {text!r}: --insecure is allowed only on loopback or lab addresses"
            )
    return Address(proto, host, port)


def security_for(address: Address, certs: str | os.PathLike[str] | None) -> Any:
    """distributed.security.Security for `address`: mutual TLS with the directory's CA and
    node certificate (the same pair serves scheduler, worker and client); None for tcp://."""
    if address.protocol == "tcp":
        return None
    if certs is None:
        raise UsageError(f"{address}: tls:// needs --certs DIR (make them: hilos cluster certs)")
    paths = check_certs(certs)
    from distributed.security import Security

    make: Any = Security  # distributed is untyped here: one Any at the boundary
    ca, cert, key = str(paths.ca), str(paths.cert), str(paths.key)
    return make(
        tls_ca_file=ca,
        tls_client_cert=cert,
        tls_client_key=key,
        tls_scheduler_cert=cert,
        tls_scheduler_key=key,
        tls_worker_cert=cert,
        tls_worker_key=key,
        require_encryption=True,
    )


def local_address_toward(address: Address) -> str:
    """This machine's source address for traffic to `address` (a UDP connect sends nothing),
    where a worker listens for its peers."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.connect((address.host, address.port))
        return str(s.getsockname()[0])
