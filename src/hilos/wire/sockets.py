"""Sockets for probes: raw and ICMP sockets, the one raw-capability check, receive buffers.

Errors are mapped where the socket is made (errors.from_oserror): EPERM/EACCES become a
PrivilegeError that names the fix.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Final, Literal

from hilos.errors import PrivilegeError, from_oserror
from hilos.wire.frames import (
    ICMP6_DEST_UNREACH,
    ICMP6_ECHO_REPLY,
    ICMP6_TIME_EXCEEDED,
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_TIME_EXCEEDED,
)

__all__ = [
    "ICMP6_FILTER",
    "IPV6_CHECKSUM",
    "PRIVILEGE_FIX",
    "RX_ANCILLARY",
    "IcmpSocket",
    "can_raw",
    "enlarge_rcvbuf",
    "kernel_lag_ms",
    "open_icmp_socket",
    "ping_group_allows",
    "poll_readable",
    "raw_drops",
    "raw_socket",
    "rx_timestamps",
    "source_address",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

PRIVILEGE_FIX = "run as root, or grant the capability: sudo setcap cap_net_raw+ep $(which python3)"
_SYSCTL_FIX = (
    "run as root (or with CAP_NET_RAW), or allow unprivileged ping for your group: "
    "sysctl -w net.ipv4.ping_group_range='0 2147483647'"
)

# Linux socket options not exported by the socket module (linux/icmp.h, linux/icmpv6.h, in.h).
_SOL_RAW: Final = 255
_ICMP_FILTER: Final = 1
ICMP6_FILTER: Final = 1  # <netinet/icmp6.h>
IPV6_CHECKSUM: Final[int] = getattr(socket, "IPV6_CHECKSUM", 7)
_SO_RCVBUFFORCE: Final[int] = getattr(socket, "SO_RCVBUFFORCE", 33)
_RCVBUF = 8 << 20
_SO_TIMESTAMPNS: Final[int] = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC: Final = struct.Struct("=qq")
RX_ANCILLARY: Final = socket.CMSG_SPACE(_TIMESPEC.size)  # recvmsg's ancbufsize for the stamp


def can_raw() -> bool:
    """Whether this process may open raw sockets (root or CAP_NET_RAW), tested, not guessed."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except OSError:
        return False
    return True


def raw_socket(family: int, proto: int, what: str) -> socket.socket:
    """A SOCK_RAW socket; PrivilegeError naming the fix without CAP_NET_RAW."""
    try:
        return socket.socket(family, socket.SOCK_RAW, proto)
    except OSError as exc:
        err = from_oserror(exc, f"opening a raw {what} socket", fix=PRIVILEGE_FIX)
        raise err from exc


def enlarge_rcvbuf(sock: socket.socket, size: int) -> None:
    """Give `sock` a receive buffer of `size` bytes, as far as this process may.

    Replies arrive in bursts: a small receive buffer silently drops them (a Python multi-ping
    lost 40% of replies that way). SO_RCVBUFFORCE ignores net.core.rmem_max (root or
    CAP_NET_ADMIN); without it, SO_RCVBUF gets what rmem_max allows.
    """
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, size)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def source_address(dst: IPAddress | str) -> IPAddress:
    """The local address the kernel would use for `dst` (a connected UDP socket sends nothing)."""
    addr = ipaddress.ip_address(dst)
    fam = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    try:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.connect((str(addr), 9))
            return ipaddress.ip_address(s.getsockname()[0].split("%")[0])
    except OSError as exc:
        raise from_oserror(exc, f"finding a route to {addr}") from exc


def ping_group_allows() -> bool:
    """Whether `net.ipv4.ping_group_range` covers one of this process's groups."""
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as fh:
            low, high = (int(x) for x in fh.read().split())
    except (OSError, ValueError):
        return False
    return any(low <= g <= high for g in {os.getgid(), os.getegid(), *os.getgroups()})


@dataclass(slots=True)
class IcmpSocket:
    """An open ICMP socket: `raw` (SOCK_RAW, IP header included for IPv4) or datagram.

    On a datagram ("ping") socket Linux replaces the echo identifier with the socket's local port
    (`ident`), returns no IP header and delivers only replies to that identifier.
    """

    sock: socket.socket
    family: int  # 4 or 6
    raw: bool
    ident: int | None = None

    @property
    def ip_header(self) -> bool:
        return self.raw and self.family == 4

    def close(self) -> None:
        self.sock.close()


def open_icmp_socket(
    family: int, *, mode: Literal["auto", "raw", "dgram"] = "auto", rcvbuf: int = _RCVBUF
) -> IcmpSocket:
    """Open the best ICMP socket this process may have for `family` (4 or 6).

    Raw when privileged, else an unprivileged datagram socket where `net.ipv4.ping_group_range`
    allows it, else PrivilegeError naming both fixes.
    """
    af, proto = (
        (socket.AF_INET, socket.IPPROTO_ICMP)
        if family == 4
        else (socket.AF_INET6, socket.IPPROTO_ICMPV6)
    )
    errors: list[OSError] = []
    kinds = ("raw", "dgram") if mode == "auto" else (mode,)
    for kind in kinds:
        stype = socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM
        try:
            sock = socket.socket(af, stype, proto)
        except OSError as exc:
            errors.append(exc)
            continue
        try:
            _tune(sock, family, raw=kind == "raw", rcvbuf=rcvbuf)
            ident = sock.getsockname()[1] if kind == "dgram" else None
        except OSError as exc:
            sock.close()
            raise from_oserror(exc, f"setting up an ICMPv{family} socket") from exc
        return IcmpSocket(sock, family, kind == "raw", ident)
    what = f"opening an ICMP{'v6' if family == 6 else ''} socket"
    last = errors[-1]
    if all(e.errno in (errno.EPERM, errno.EACCES) for e in errors):
        raise PrivilegeError(f"{what}: permission denied ({_SYSCTL_FIX})") from last
    raise from_oserror(last, what, _SYSCTL_FIX) from last


def _tune(sock: socket.socket, family: int, *, raw: bool, rcvbuf: int) -> None:
    enlarge_rcvbuf(sock, rcvbuf)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    if not raw:
        sock.bind(("0.0.0.0", 0) if family == 4 else ("::", 0))
        return
    # Kernel-side type filters: a raw ICMP socket sees every ICMP message of the namespace,
    # including other programs' pings; let through only what can answer a probe.
    if family == 4:
        wanted = (ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)
        blocked = 0xFFFFFFFF
        for t in wanted:
            blocked &= ~(1 << t)
        sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", blocked))
    else:
        words = [0xFFFFFFFF] * 8  # Linux: a set bit blocks the type
        for t in (ICMP6_ECHO_REPLY, ICMP6_DEST_UNREACH, ICMP6_TIME_EXCEEDED):
            words[t >> 5] &= ~(1 << (t & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))


def poll_readable(
    socks: list[tuple[socket.socket, int]],
) -> tuple[select.poll, dict[int, tuple[socket.socket, int]]]:
    """A poller over receive sockets (made non-blocking) and fd -> (socket, kind): the one setup
    every receiver thread loop starts with."""
    poller = select.poll()
    by_fd: dict[int, tuple[socket.socket, int]] = {}
    for s, kind in socks:
        s.setblocking(False)
        poller.register(s.fileno(), select.POLLIN)
        by_fd[s.fileno()] = (s, kind)
    return poller, by_fd


def rx_timestamps(sock: socket.socket) -> None:
    """Have the kernel stamp each received packet (SO_TIMESTAMPNS; read with `kernel_lag_ms`)."""
    sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)


def kernel_lag_ms(ancdata: list[tuple[int, int, bytes]], offset_ns: int) -> float:
    """How long ago (ms) the kernel received the packet whose recvmsg ancillary data this is;
    0.0 without a stamp. `offset_ns` is time.time_ns() - time.monotonic_ns() (the stamp is
    wall-clock time). An RTT measured when Python reads a reply includes the time the reply
    waited for our receiver thread (a busy core, the GIL): subtract this to get the network's."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return float(time.monotonic_ns() + offset_ns - sec * 1_000_000_000 - nsec) / 1e6
    return 0.0


def raw_drops(sock: socket.socket) -> int | None:
    """Packets the kernel dropped for this raw socket (full receive buffer): the `drops`
    column of /proc/net/raw for its inode; None if not found."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/raw", "/proc/net/raw6"):
        try:
            with open(table) as fh:
                lines = fh.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) >= 13 and cols[9] == inode:
                return int(cols[12])
    return None
