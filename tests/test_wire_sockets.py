"""Tests for hilos.wire.sockets: ICMP sockets and their filters, privilege errors, can_raw."""

from __future__ import annotations

import socket
import struct
from typing import TYPE_CHECKING

import pytest

from hilos.wire.sockets import can_raw, open_icmp_socket, source_address

if TYPE_CHECKING:
    from conftest import Unprivileged


@pytest.mark.root
def test_raw_socket_has_kernel_type_filter() -> None:
    isock = open_icmp_socket(4)
    try:
        assert isock.raw and isock.ip_header
        blocked = struct.unpack("=I", isock.sock.getsockopt(255, 1, 4))[0]
        assert not blocked & (1 << 0) and not blocked & (1 << 3) and not blocked & (1 << 11)
        assert blocked & (1 << 8)  # echo requests (ours, on loopback) never reach Python
        assert isock.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 20
    finally:
        isock.close()


@pytest.mark.root
@pytest.mark.timeout(30)
def test_unprivileged_socket_error_names_the_sysctl(unprivileged: Unprivileged) -> None:
    """As `nobody` with ping_group_range closed: a PrivilegeError naming both fixes."""
    code = (
        "from hilos.wire.sockets import open_icmp_socket, ping_group_allows\n"
        "from hilos.errors import PrivilegeError\n"
        "try:\n"
        "    s = open_icmp_socket(4)\n"
        "    print('OPENED', 'raw' if s.raw else 'dgram', ping_group_allows())\n"
        "except PrivilegeError as e:\n"
        "    print('ERR', e)\n"
    )
    proc = unprivileged.run(["-c", code], timeout=20)
    out = proc.stdout.strip()
    if out.startswith("OPENED"):
        assert out.split()[1] == "dgram"  # never raw without privilege
    else:
        assert out.startswith("ERR"), proc.stderr
        assert "ping_group_range" in out and "root" in out


@pytest.mark.root
@pytest.mark.timeout(30)
def test_can_raw_as_root() -> None:
    assert can_raw()
    assert str(source_address("127.0.0.1")) == "127.0.0.1"
    assert str(source_address("::1")) == "::1"


def test_kernel_receive_stamp_measures_how_long_a_packet_waited() -> None:
    """A datagram read 80 ms after it arrived: the kernel's stamp says so (the SYN scan takes
    that wait out of its RTTs), and without the option there is no stamp."""
    import time

    from hilos.wire.sockets import RX_ANCILLARY, kernel_lag_ms, rx_timestamps

    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        rx_timestamps(rx)
        # The kernel turns receive stamping on by deferred work when the first socket asks;
        # until then a packet is stamped when read.
        time.sleep(0.1)
        tx.sendto(b"x", rx.getsockname())
        time.sleep(0.08)
        _data, anc, _flags, _addr = rx.recvmsg(16, RX_ANCILLARY)
        lag = kernel_lag_ms(anc, time.time_ns() - time.monotonic_ns())
        assert 70 <= lag < 1000
        assert kernel_lag_ms([], 0) == 0.0
