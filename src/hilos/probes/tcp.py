"""Old path of the TCP probes and their transport, kept until the sweep imports the new ones."""

from __future__ import annotations

from hilos.probes.base import (
    KIND_RST,
    KIND_SYN_ACK,
    KIND_UNREACH,
    SPORT_BASE,
    SPORT_COUNT,
    SPORT_MASK,
    TICK_MS,
    TICK_SHIFT,
    Reply,
    addr_str,
    send_tick,
    unreach_reason,
)
from hilos.probes.tcp_reply import parse_icmp4, parse_icmp6, parse_ipv4, parse_tcp6
from hilos.probes.tcp_transport import TcpProber
from hilos.probes.tcp_transport import TcpTransport as RawTcpEngine
from hilos.wire.checksum import checksum
from hilos.wire.cookie import M1 as _M1
from hilos.wire.cookie import M2 as _M2
from hilos.wire.cookie import M3 as _M3
from hilos.wire.cookie import MASK64 as _MASK64
from hilos.wire.cookie import Cookie
from hilos.wire.frames import (
    ACK,
    FIN,
    MSS,
    RST,
    SYN,
    WINDOW,
    SynTemplate4,
    build_ipv4_packet,
    build_tcp_segment,
    tcp6_probe,
)
from hilos.wire.sockets import PRIVILEGE_FIX, can_raw, source_address

__all__ = [
    "ACK",
    "FIN",
    "KIND_RST",
    "KIND_SYN_ACK",
    "KIND_UNREACH",
    "MSS",
    "PRIVILEGE_FIX",
    "RST",
    "SPORT_BASE",
    "SPORT_COUNT",
    "SPORT_MASK",
    "SYN",
    "TICK_MS",
    "TICK_SHIFT",
    "WINDOW",
    "_M1",
    "_M2",
    "_M3",
    "_MASK64",
    "Cookie",
    "RawTcpEngine",
    "Reply",
    "SynTemplate4",
    "TcpProber",
    "addr_str",
    "build_ipv4_packet",
    "build_tcp_segment",
    "can_raw",
    "checksum",
    "parse_icmp4",
    "parse_icmp6",
    "parse_ipv4",
    "parse_tcp6",
    "send_tick",
    "source_address",
    "tcp6_probe",
    "unreach_reason",
]
