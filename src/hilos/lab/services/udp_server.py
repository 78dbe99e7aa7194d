"""Lab UDP services: one process answering DNS, NTP, SNMP, SSDP and memcached on the spec's sockets.

LAB USE ONLY, started by the lab inside its hosts namespace as
``python -m hilos.lab.services.udp_server SPEC.json`` with
``{"services": [{"addr": "198.18.0.1", "port": 53, "kind": "dns"}, ...]}``. Each kind answers
only a valid request of its protocol and stays silent otherwise (udp_dns, udp_ntp, ...). Prints
``ready`` once every socket is bound; exits 0 on SIGTERM or SIGINT. `UDP_KINDS` says what a
scanner should report for each kind (the lab's truth).
"""

from __future__ import annotations

import contextlib
import json
import selectors
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hilos.lab.services import udp_dns, udp_memcached, udp_ntp, udp_snmp, udp_ssdp

__all__ = ["ANSWERS", "UDP_KINDS", "main", "serve"]

ANSWERS: dict[str, Callable[[bytes], bytes | None]] = {
    "dns": udp_dns.answer,
    "ntp": udp_ntp.answer,
    "snmp": udp_snmp.answer,
    "ssdp": udp_ssdp.answer,
    "memcached": udp_memcached.answer,
}

# What a scanner should name: service, product, version.
UDP_KINDS: dict[str, dict[str, str | None]] = {
    "dns": {"service": "domain", "product": "ISC BIND", "version": "9.18.24"},
    "ntp": {"service": "ntp", "product": "NTP", "version": "v4"},
    "snmp": {"service": "snmp", "product": udp_snmp.SYSDESCR, "version": None},
    "ssdp": {"service": "upnp", "product": udp_ssdp.SERVER, "version": None},
    "memcached": {"service": "memcache", "product": "memcached", "version": udp_memcached.VERSION},
}

_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)


def bind(addr: str, port: int) -> socket.socket:
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
    s.bind((addr, port))
    s.setblocking(False)
    return s


def serve(services: list[dict[str, Any]], ready: Callable[[], None]) -> None:
    """Answer on every (addr, port, kind) until SIGTERM/SIGINT."""
    sel = selectors.DefaultSelector()
    socks = []
    for svc in services:
        s = bind(str(svc["addr"]), int(svc["port"]))
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, ANSWERS[str(svc["kind"])])
    stop = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ready()
    while not stop:
        for key, _ in sel.select(0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            for _ in range(64):
                try:
                    data, peer = sock.recvfrom(4096)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                reply = key.data(data)
                if reply is not None:
                    with contextlib.suppress(OSError):
                        sock.sendto(reply, peer)
    for s in socks:
        s.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(Path(args[0]).read_text())
    serve(list(spec.get("services", [])), lambda: print("ready", flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
