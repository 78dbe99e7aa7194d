"""A connect scan's book-keeping: result codes per port, hosts, probes in flight, host results."""

from __future__ import annotations

import _socket
import errno
import ipaddress
import socket
import time

from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.targets.ports import service_name

__all__ = [
    "CLOSED",
    "ERRNO_CODE",
    "ERROR",
    "NO_RESPONSE",
    "OPEN",
    "RESET",
    "RESOURCE_ERRNOS",
    "UNKNOWN",
    "Address",
    "Host",
    "Item",
    "Probe",
    "Windows",
    "build_result",
    "close_connected",
]

Address = str | ipaddress.IPv4Address | ipaddress.IPv6Address

# Result codes stored per port in a bytearray (compact: a /24 x 65535 ports is 16 MB).
UNKNOWN, OPEN, CLOSED, NO_RESPONSE = 0, 1, 2, 3
HOST_UNREACH, NET_UNREACH, ADMIN_PROHIBITED, HOST_PROHIBITED, RESET, ERROR = 4, 5, 6, 7, 8, 9
CODE_STATE_REASON: dict[int, tuple[str, str]] = {
    OPEN: ("open", "syn-ack"),
    CLOSED: ("closed", "conn-refused"),
    NO_RESPONSE: ("filtered", "no-response"),
    HOST_UNREACH: ("filtered", "host-unreach"),
    NET_UNREACH: ("filtered", "net-unreach"),
    ADMIN_PROHIBITED: ("filtered", "admin-prohibited"),
    HOST_PROHIBITED: ("filtered", "host-prohibited"),
    RESET: ("closed", "reset"),
    ERROR: ("filtered", "error"),
}
#: What a connect's errno says about the port; any other errno is ERROR.
ERRNO_CODE = {
    errno.ECONNREFUSED: CLOSED,
    errno.EHOSTUNREACH: HOST_UNREACH,
    errno.ENETUNREACH: NET_UNREACH,
    errno.EACCES: ADMIN_PROHIBITED,
    errno.EPERM: ADMIN_PROHIBITED,
    errno.EHOSTDOWN: HOST_UNREACH,
    errno.ECONNRESET: RESET,
    errno.ETIMEDOUT: NO_RESPONSE,
}
#: Local shortages: not an answer from the network. Shrink the window and try the probe again.
RESOURCE_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL, errno.EAGAIN}
)

_LINGER_RST = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {1, 0}: close with RST
# Closed-port results are immutable and identical for every host: shared, one per port number.
_CLOSED_RESULTS: dict[int, PortResult] = {}


class Host:
    """Book-keeping of one host: its ports' result codes and how many still lack an answer."""

    __slots__ = ("addr", "codes", "family", "found", "index", "pos", "remaining")

    def __init__(self, item: Address | HostResult, index: int, nports: int, expected: int) -> None:
        self.found = item if isinstance(item, HostResult) else None
        self.addr = item.host if isinstance(item, HostResult) else str(item)
        self.family = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
        self.index = index
        self.pos = 0  # next port index to feed (interleaved mode)
        self.remaining = expected
        self.codes = bytearray(nports)


#: A probe to make: (host, port index, attempt), or an answer: (host, port index, code).
Item = tuple[Host, int, int]


class Probe:
    """A connect in flight."""

    __slots__ = ("attempt", "done", "host", "p_i", "sock", "start")

    def __init__(self, sock: _socket.socket, host: Host, p_i: int, start: float, attempt: int):
        self.sock = sock
        self.host = host
        self.p_i = p_i
        self.start = start
        self.attempt = attempt
        self.done = False


class Windows:
    """Each worker's socket window (`win`, what is in use; `cap`, its ceiling), shared so the
    scan's stats can sum them; `resource_waits` counts the times a shortage shrank one."""

    __slots__ = ("cap", "resource_waits", "win")

    def __init__(self, threads: int, initial: int, cap: int) -> None:
        self.win = [initial] * threads
        self.cap = [cap] * threads
        self.resource_waits = 0

    def shrink(self, wid: int, in_flight: int) -> None:
        """Out of descriptors or ports: the window becomes what actually fitted, minus a margin."""
        self.resource_waits += 1
        # The window grows back by itself as answers come (descriptors held elsewhere, e.g. by
        # banner grabs, may be freed later); each new shortage costs only one failed call.
        self.win[wid] = max(4, min(self.win[wid] - 1, int(in_flight * 0.9)))
        if in_flight == 0:
            time.sleep(0.01)  # nothing of ours to wait for: someone else holds the descriptors


def close_connected(s: _socket.socket, addr: str, port: int) -> bool:
    """Close a connected socket with a RST (no TIME_WAIT left behind); False when it was a
    self-connect: Linux lets a connect to a local closed port pick that very port as its
    source and "connect" to itself (TCP simultaneous open). Not an open port: probe again,
    the next try gets another source port."""
    selfc = False
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        local = s.getsockname()
        selfc = local[1] == port and local[0] == addr
    except OSError:
        pass
    s.close()
    return not selfc


def build_result(h: Host, ports: tuple[int, ...]) -> ScanHostResult:
    """The host's result. Discovered hosts keep the sweep's reason and RTT; without
    discovery (-Pn) a host is up when any port answered (open or closed), as in the SYN scan."""
    res: list[PortResult] = []
    closed = _CLOSED_RESULTS
    codes = h.codes
    for i, code in enumerate(codes):
        if code == CLOSED:
            port = ports[i]
            pr = closed.get(port)
            if pr is None:
                # Named from the port table, as nmap does (`22/tcp closed ssh`).
                pr = closed[port] = PortResult(
                    port, "closed", "conn-refused", service=service_name(port)
                )
            res.append(pr)
        elif code != UNKNOWN:
            state, reason = CODE_STATE_REASON[code]
            port = ports[i]
            res.append(PortResult(port, state, reason, service=service_name(port)))  # type: ignore[arg-type]
    found = h.found
    if found is not None:
        return ScanHostResult(h.addr, "up", found.reason, tuple(res), found.rtt_ms)
    if OPEN in codes:
        return ScanHostResult(h.addr, "up", "syn-ack", tuple(res))
    if CLOSED in codes or RESET in codes:
        return ScanHostResult(h.addr, "up", "conn-refused", tuple(res))
    reason = res[0].reason if res else "no-response"
    return ScanHostResult(h.addr, "down", reason, tuple(res))
