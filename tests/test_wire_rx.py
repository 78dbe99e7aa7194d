"""Tests for hilos.wire.rx: batched receiving with the kernel's receive stamps."""

from __future__ import annotations

import socket
import time

from hilos.wire.rx import RxBatch


def test_stamps_give_each_packets_kernel_receive_time() -> None:
    """RxBatch(stamps=True): one kernel receive time per packet of a batch, in arrival order
    (the SYN scan's batched receiver takes RTTs from them)."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx,
    ):
        rx.bind(("127.0.0.1", 0))
        batch = RxBatch(rx, 8, 64, stamps=True)
        time.sleep(0.1)  # stamping is switched on by deferred work (see test_wire_sockets)
        for i in range(3):
            tx.sendto(b"x%d" % i, rx.getsockname())
            time.sleep(0.03)
        n = batch.recv(1.0)
        waited = (time.time_ns() - batch.stamps_ns(n)) / 1e6
        assert n == 3 and list(batch.lens(n)) == [2, 2, 2]
        assert waited[0] > waited[1] > waited[2] > 0 and waited[0] - waited[2] >= 50
        plain = RxBatch(rx, 8, 64)
        tx.sendto(b"y", rx.getsockname())
        assert plain.recv(1.0) == 1 and list(plain.stamps_ns(1)) == [0]
