"""Link-layer transmit: IPv4 probes as Ethernet frames to the gateway, routed as the kernel would.

`LinkTx` sends on an AF_PACKET socket past the scanner's own IP stack; `kernel_route_v4` asks
the kernel (netlink RTM_GETROUTE) where a packet would go, so a frame only ever leaves where the
kernel itself would send it. Shared by the sweep and the SYN scan.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable
from typing import Final

__all__ = ["LinkTx", "kernel_route_v4"]

_SOL_PACKET: Final = 263
_PACKET_QDISC_BYPASS: Final = 20
_ARPHRD_ETHER: Final = 1
_ETH_P_IP: Final = 0x0800
_IP_PREFIX = struct.Struct("!BBHHHBB")  # version/ihl .. protocol: the 10 bytes before the checksum


_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, proto,
#                                       scope, type, flags
_RTM_GETROUTE, _RTM_NEWROUTE, _NLMSG_ERROR = 26, 24, 2
_NLM_F_REQUEST = 1
_RTA_DST, _RTA_OIF, _RTA_GATEWAY = 1, 4, 5
_RTN_UNICAST = 1


def kernel_route_v4(dst: int) -> tuple[int, int, int, int] | None:
    """Ask the kernel (netlink RTM_GETROUTE) how it would send to `dst`, exactly as a socket
    would: (route type, output interface index, gateway or 0, prefix length of the query).

    Unlike /proc/net/route this sees the local table, policy rules and every routing table, so
    a frame is only ever sent where the kernel itself would send the packet.
    """
    try:
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    except (OSError, AttributeError):
        return None
    try:
        nl.settimeout(1.0)
        rta = struct.pack("=HH", 8, _RTA_DST) + dst.to_bytes(4, "big")
        body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0) + rta
        nl.send(_NLMSG.pack(_NLMSG.size + len(body), _RTM_GETROUTE, _NLM_F_REQUEST, 1, 0) + body)
        data = nl.recv(65536)
    except OSError:
        return None
    finally:
        nl.close()
    if len(data) < _NLMSG.size + _RTMSG.size:
        return None
    length, kind = _NLMSG.unpack_from(data)[:2]
    if kind != _RTM_NEWROUTE:
        return None  # NLMSG_ERROR: no route (ENETUNREACH) or a failure
    _fam, dst_len, _s, _t, _tab, _p, _scope, rtype, _f = _RTMSG.unpack_from(data, _NLMSG.size)
    oif = gateway = 0
    off = _NLMSG.size + _RTMSG.size
    end = min(length, len(data))
    while off + 4 <= end:
        alen, atype = struct.unpack_from("=HH", data, off)
        if alen < 4:
            break
        value = data[off + 4 : off + alen]
        if atype == _RTA_OIF and len(value) == 4:
            oif = struct.unpack("=I", value)[0]
        elif atype == _RTA_GATEWAY and len(value) == 4:
            gateway = int.from_bytes(value, "big")
        off += (alen + 3) & ~3
    return rtype, oif, gateway, dst_len


def _local_addresses_v4() -> set[int]:
    """Every IPv4 address of this namespace's local table (from /proc/net/fib_trie)."""
    found: set[int] = set()
    try:
        with open("/proc/net/fib_trie") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return found
    last: str | None = None
    for line in lines:
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif "/32 host LOCAL" in text and last is not None:
            with contextlib.suppress(OSError):
                found.add(int.from_bytes(socket.inet_aton(last), "big"))
    return found


def _routes_v4() -> list[tuple[int, int, int, str, int]]:
    """The main table's IPv4 routes from /proc: (prefix length, network, mask, iface, gateway)."""
    routes: list[tuple[int, int, int, str, int]] = []
    try:
        with open("/proc/net/route") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        f = line.split()
        if len(f) < 8:
            continue
        try:
            net = int.from_bytes(int(f[1], 16).to_bytes(4, "little"), "big")
            gw = int.from_bytes(int(f[2], 16).to_bytes(4, "little"), "big")
            flags = int(f[3], 16)
            mask = int.from_bytes(int(f[7], 16).to_bytes(4, "little"), "big")
        except (ValueError, OverflowError):
            continue
        if flags & 0x1:  # RTF_UP; RTF_GATEWAY (0x2) says whether gw is a next hop
            routes.append((bin(mask).count("1"), net, mask, f[0], gw if flags & 0x2 else 0))
    routes.sort(reverse=True)
    return routes


def _ifindex(iface: str) -> int:
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        return -1


def _neighbour_mac(ip: int, iface: str) -> bytes | None:
    text = socket.inet_ntoa(ip.to_bytes(4, "big"))
    try:
        with open("/proc/net/arp") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if len(f) >= 6 and f[0] == text and f[5] == iface and int(f[2], 16) & 0x2:
            mac = bytes.fromhex(f[3].replace(":", ""))
            return mac if len(mac) == 6 and any(mac) else None
    return None


def _ethernet(oif: int) -> tuple[str, bytes] | None:
    """(name, own MAC) of interface `oif` if it is an Ethernet interface."""
    try:
        iface = socket.if_indextoname(oif)
        with open(f"/sys/class/net/{iface}/type") as fh:
            if int(fh.read().strip()) != _ARPHRD_ETHER:
                return None
        with open(f"/sys/class/net/{iface}/address") as fh:
            own = bytes.fromhex(fh.read().strip().replace(":", ""))
    except (OSError, ValueError):
        return None
    return (iface, own) if len(own) == 6 else None


def _gateway_mac(gw: int, iface: str, resolve: Callable[[], object] | None) -> bytes | None:
    """The gateway's MAC from the neighbour table; if unknown, `resolve()` once (one ordinary
    probe makes the kernel ARP for it) and poll the table for up to 1 s."""
    mac = _neighbour_mac(gw, iface)
    if mac is None and resolve is not None:
        try:
            resolve()
        except OSError:
            return None
        deadline = time.monotonic() + 1.0
        while mac is None and time.monotonic() < deadline:
            time.sleep(0.01)
            mac = _neighbour_mac(gw, iface)
    return mac


def _packet_socket(dst: int, iface: str) -> tuple[socket.socket, int] | None:
    """An AF_PACKET socket bound to `iface` (qdisc bypassed where allowed) and our IPv4 source
    address toward `dst`; None without the privilege."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((socket.inet_ntoa(dst.to_bytes(4, "big")), 9))
            source = int.from_bytes(socket.inet_aton(probe.getsockname()[0]), "big")
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except OSError:
        return None
    try:
        sock.bind((iface, 0))
        with contextlib.suppress(OSError):
            sock.setsockopt(_SOL_PACKET, _PACKET_QDISC_BYPASS, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    except OSError:
        sock.close()
        return None
    return sock, source


class LinkTx:
    """Sends IPv4 packets as Ethernet frames to the gateway's MAC on an AF_PACKET socket.

    A raw IP socket costs a route lookup, netfilter hooks, a neighbour lookup and a qdisc per
    packet; with PACKET_QDISC_BYPASS a frame goes straight to the driver, about 40% less kernel
    time per probe in the lab (masscan and zmap send this way). Only for destinations routed via
    a gateway on an Ethernet interface (one next hop for all of them); on-link targets would each
    need ARP, so they keep the IP socket. Frames carry no IP options and IP id 0 (as nmap's).

        link = LinkTx.for_route(dst)   # None when not applicable
        if link: link.send(link.eth + ip_packet)
    """

    __slots__ = (
        "_by24",
        "_ifindex",
        "_local",
        "_long",
        "eth",
        "gateway",
        "iface",
        "sock",
        "source",
    )

    def __init__(
        self, sock: socket.socket, iface: str, gateway: int, eth: bytes, source: int
    ) -> None:
        # /25-/32 routes of the main table and the local addresses, by /24: inside such a /24
        # the kernel's answer for one address does not hold for the others.
        routes = _routes_v4()
        self._long = {net >> 8 for plen, net, _m, _i, _g in routes if plen > 24}
        self._local = {a >> 8 for a in _local_addresses_v4()}
        self._by24: dict[int, bool] = {}
        self._ifindex = _ifindex(iface)
        self.sock = sock
        self.iface = iface
        self.gateway = gateway
        self.eth = eth  # dst MAC, src MAC, ethertype: the 14-byte header of every frame
        self.source = source  # our IPv4 address toward the gateway, as an int

    @classmethod
    def for_route(cls, dst: int, *, resolve: Callable[[], object] | None = None) -> LinkTx | None:
        """A transmitter for `dst`'s route, or None (no gateway, not Ethernet, not privileged).

        The route is the kernel's own answer (netlink), never a guess: a local, loopback,
        blackhole or on-link destination gets None and stays on the IP socket. `resolve` is
        called once if the gateway's MAC is not yet known (send one ordinary probe so the
        kernel ARPs for it); the neighbour table is then polled for up to 1 s.
        """
        if dst >> 24 == 127 or dst in _local_addresses_v4():
            return None
        route = kernel_route_v4(dst)
        if route is None or route[0] != _RTN_UNICAST or not route[2]:
            return None
        _type, oif, gw, _plen = route
        found = _ethernet(oif)
        if found is None:
            return None
        iface, own = found
        mac = _gateway_mac(gw, iface, resolve)
        if mac is None:
            return None
        opened = _packet_socket(dst, iface)
        if opened is None:
            return None
        sock, source = opened
        link = cls(sock, iface, gw, mac + own + _ETH_P_IP.to_bytes(2, "big"), source)
        if not link.covers(dst):
            link.close()
            return None
        return link

    def covers(self, dst: int) -> bool:
        """Whether the kernel sends `dst` (and, cached, its whole /24) by this interface and
        gateway. A /24 holding a local address or a /25-/32 route is never cached and never
        covered: those few blocks keep the IP socket."""
        block = dst >> 8
        hit = self._by24.get(block)
        if hit is None:
            hit = False
            if block not in self._long and block not in self._local and dst >> 24 != 127:
                route = kernel_route_v4(block << 8)
                hit = (
                    route is not None
                    and route[0] == _RTN_UNICAST
                    and route[1] == self._ifindex
                    and route[2] == self.gateway
                )
            self._by24[block] = hit
        return hit

    def covers_range(self, first: int, last: int) -> bool:
        """Whether every address of a range leaves by this gateway (checked per /24)."""
        if first == last:
            return self.covers(first)
        covers = self.covers
        return all(covers(b << 8) for b in range(first >> 8, (last >> 8) + 1))

    def ip_prefix(self, proto: int, total_len: int) -> tuple[bytes, int]:
        """The Ethernet header plus IPv4 bytes 0-9 for `proto`/`total_len`, and the checksum sum
        of every IPv4 header word except the destination (add dst mod 0xFFFF per packet)."""
        head = _IP_PREFIX.pack(0x45, 0, total_len, 0, 0x4000, 64, proto)  # DF, TTL 64
        total = int.from_bytes(head, "big") + self.source
        return self.eth + head, total % 0xFFFF

    def close(self) -> None:
        self.sock.close()
