"""Old path of the ICMP echo probe and engine, kept only until the sweep imports the new ones."""

from __future__ import annotations

from hilos.probes.echo_engine import EchoEngine
from hilos.probes.icmp_echo import V6_TAG, IcmpReply, build_echo, parse_reply
from hilos.wire.checksum import checksum
from hilos.wire.frames import ECHO_PAD, ECHO_PAYLOAD_LEN
from hilos.wire.link import LinkTx, kernel_route_v4
from hilos.wire.sockets import IcmpSocket, open_icmp_socket, ping_group_allows
from hilos.wire.sockets import can_raw as can_open_raw

__all__ = [
    "ECHO_PAD",
    "ECHO_PAYLOAD_LEN",
    "V6_TAG",
    "EchoEngine",
    "IcmpReply",
    "IcmpSocket",
    "LinkTx",
    "build_echo",
    "can_open_raw",
    "checksum",
    "kernel_route_v4",
    "open_icmp_socket",
    "parse_reply",
    "ping_group_allows",
]
