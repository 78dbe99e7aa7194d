"""Batched receiving of TCP answers for the raw TCP transport (issue 11): recvmmsg into numpy
rows and one vectorised validation per batch (probes.vector.TcpVector.validate, the rules of
probes.tcp_reply), instead of one recv and one parse per packet. Only the valid answers become
Reply objects: a -p- scan's RST per closed port stops costing a parse each."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt

from hilos.probes.base import (
    KIND_SYN_ACK,
    SPORT_BASE,
    SPORT_MASK,
    TICK_MS,
    TICK_SHIFT,
    Reply,
)
from hilos.probes.vector import TcpVector
from hilos.wire.cookie import Cookie
from hilos.wire.rx import RxBatch

__all__ = ["BatchDrain"]

_COUNT: Final = 1024  # packets per recvmmsg
_SNAP: Final = 128  # bytes kept of each (IP header + TCP header with options fit)


# (address, port, kind, RTT in ms) of a batch's valid answers, as arrays.
_U32: TypeAlias = npt.NDArray[np.uint32]
_U16: TypeAlias = npt.NDArray[np.uint16]
_U8: TypeAlias = npt.NDArray[np.uint8]
OnBatch: TypeAlias = Callable[[_U32, _U16, _U8, npt.NDArray[np.float64]], None]


class BatchDrain:
    """Reads an IPv4 raw TCP socket in batches and calls `on_reply` for each valid answer, or
    `on_batch` once for all of a batch's. RTTs run to the kernel's receive stamp of each
    packet, not to when Python reads it (a busy core is not a queue in the network)."""

    def __init__(
        self,
        cookie: Cookie,
        on_reply: Callable[[Reply], None],
        on_batch: OnBatch | None = None,
    ) -> None:
        self.validator = TcpVector(cookie, b"", 0)
        self.on_reply = on_reply
        self.on_batch = on_batch
        self._rx: dict[int, RxBatch] = {}
        self.last = 0  # packets the last drain read

    def drain(self, sock: socket.socket, rounds: int = 4) -> bool:
        """Take what `sock` has queued (at most `rounds` batches); True when it was emptied."""
        rx = self._rx.get(sock.fileno())
        if rx is None:
            rx = self._rx[sock.fileno()] = RxBatch(sock, _COUNT, _SNAP, stamps=True)
        self.last = 0
        for _ in range(rounds):
            n = rx.recv(0.0)
            self.last += n
            if n:
                self._answers(rx.pkts[:n], rx.lens(n), rx.stamps_ns(n))
            if n < _COUNT:
                return True
        return False

    def _answers(self, pkts: np.ndarray, lens: np.ndarray, stamps: np.ndarray) -> None:
        ans = self.validator.validate(pkts, lens)
        rows = np.flatnonzero(ans.ok)
        if not len(rows):
            return
        ihl = (pkts[rows, 0] & 15).astype(np.int64) * 4
        sport = (pkts[rows, ihl + 2].astype(np.int64) << 8) | pkts[rows, ihl + 3]
        now_ns = time.monotonic_ns()
        offset = time.time_ns() - now_ns  # the stamps are wall-clock time
        stamp = stamps[rows]
        mono = np.where(stamp > 0, np.minimum(stamp - offset, now_ns), now_ns)
        ticks = ((mono >> TICK_SHIFT) - sport + SPORT_BASE) & SPORT_MASK
        if self.on_batch is not None:
            rtt_ms = ticks.astype(np.float64) * TICK_MS
            self.on_batch(ans.addr[rows], ans.port[rows], ans.kind[rows], rtt_ms)
            return
        rtt = (ticks * TICK_MS).tolist()
        on_reply = self.on_reply
        for a, p, s, k, r in zip(
            ans.addr[rows].tolist(), ans.port[rows].tolist(), sport.tolist(),
            ans.kind[rows].tolist(), rtt, strict=True,
        ):  # fmt: skip
            on_reply(Reply(4, a, p, s, k, "syn-ack" if k == KIND_SYN_ACK else "reset", r))
