"""Batched reading of ICMP errors for the UDP scan: recvmmsg(2) with each packet's kernel arrival
time, and one numpy validation per batch.

A scan's first pass brings one port unreachable per closed port, thousands at once; read and
parsed one by one they cost the receiver thread ~8 us each, taken from the sender (one GIL).
Here a batch of up to `COUNT` is one system call, the checks of
hilos.probes.udp_reply.parse_icmp4 and hilos.udp.receiver.Validator.icmp are array operations
(tests/test_udp_rx4.py: exactly the scalar path's answers, for fuzzed packets too), and only
the valid answers reach the state.
"""

from __future__ import annotations

import socket
from typing import Final

import numpy as np
import numpy.typing as npt

from hilos.probes.base import unreach_reason
from hilos.probes.udp_vector import keyed_sports
from hilos.udp.state import REASON_CODE, UdpState
from hilos.wire.rx import RxBatch

__all__ = ["COUNT", "Icmp4Batch", "reason_table"]

COUNT: Final = 512  # packets per recvmmsg
SNAP: Final = 160  # bytes kept: IP header (options too) + ICMP + quoted IP (options) + UDP
_u64 = np.uint64


def reason_table() -> npt.NDArray[np.int16]:
    """ICMP code -> the state's reason code for type 3 (destination unreachable)."""
    out = np.zeros(256, dtype=np.int16)
    for code in range(256):
        reason = unreach_reason(4, 3, code)
        out[code] = REASON_CODE.get(reason or "unreach", REASON_CODE["unreach"])
    return out


class Icmp4Batch:
    """Reads the raw ICMP socket `sock` (SO_TIMESTAMPNS on) in batches into `state`."""

    def __init__(self, sock: socket.socket, state: UdpState) -> None:
        self.state = state
        tg = state.targets
        v4 = [(a, h) for h, (a, f) in enumerate(zip(tg.ints, tg.families, strict=True)) if f == 4]
        v4.sort()
        self.addrs = np.array([a for a, _ in v4], dtype=np.uint64)
        self.hosts = np.array([h for _, h in v4], dtype=np.int64)
        self.port_index = np.array(state.port_index, dtype=np.int64)
        self.reasons = reason_table()
        self.cookie = tg.cookie
        self.rx = RxBatch(sock, COUNT, SNAP, stamps=True)
        self.pkts = self.rx.pkts
        self.last = 0  # packets the last recvmmsg took

    def drain(self, rounds: int = 8) -> bool:
        """Take what the socket holds (at most `rounds` batches); True when it was emptied."""
        rx = self.rx
        for _ in range(rounds):
            n = self.last = rx.take()
            if n:
                self.handle(self.pkts[:n], rx.lens(n), self._arrivals(n))
            if n < COUNT:
                return True
        return False

    def _arrivals(self, n: int) -> list[int | None]:
        """Each packet's kernel arrival time as time.monotonic_ns(), None if it had none."""
        offset = time_offset()
        return [t - offset if t else None for t in self.rx.stamps_ns(n).tolist()]

    def handle(
        self, pkts: npt.NDArray[np.uint8], lens: npt.NDArray[np.int64], at: list[int | None]
    ) -> int:
        """Validate a batch (rows of IPv4 packets, IP header first) and hand each valid answer
        to the state; returns how many counted."""
        h, pi, code, rows = self.validate(pkts, lens)
        answer = self.state.answer
        found = zip(h.tolist(), pi.tolist(), code.tolist(), rows.tolist(), strict=True)
        for hh, pp, cc, r in found:
            answer(hh, pp, cc, None, at[r])
        return len(rows)

    def validate(
        self, pkts: npt.NDArray[np.uint8], lens: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], ...]:
        """(host index, port index, reason code, row) of each valid answer in the batch."""
        n_rows, width = pkts.shape
        p = pkts.astype(np.int64)
        rows = np.arange(n_rows)

        def at(col: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
            return p[rows, np.clip(col, 0, width - 1)]

        lens = np.minimum(lens, width)
        ihl = (p[:, 0] & 15) * 4
        ok = (p[:, 0] >> 4 == 4) & (ihl >= 20) & (lens >= ihl + 36) & (at(ihl) == 3)
        q = ihl + 8
        qv = at(q)
        qihl = (qv & 15) * 4
        u = q + qihl
        ok &= (qv >> 4 == 4) & (at(q + 9) == 17) & (qihl >= 20) & (lens >= u + 8)
        daddr = (at(q + 16) << 24) | (at(q + 17) << 16) | (at(q + 18) << 8) | at(q + 19)
        sport = (at(u) << 8) | at(u + 1)
        dport = (at(u + 2) << 8) | at(u + 3)
        where = np.searchsorted(self.addrs, daddr.astype(np.uint64))
        where = np.minimum(where, max(len(self.addrs) - 1, 0))
        if len(self.addrs):
            ok &= self.addrs[where] == daddr.astype(np.uint64)
        else:
            ok &= False
        pi = self.port_index[dport]
        ok &= pi >= 0
        keyed = keyed_sports(self.cookie, daddr.astype(np.uint64), dport.astype(np.uint64))
        ok &= keyed.astype(np.int64) == sport
        good = np.flatnonzero(ok)
        code = self.reasons[at(ihl + 1)[good]].astype(np.int64)
        return self.hosts[where[good]], pi[good], code, good


def time_offset() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC now, in ns (kernel timestamps are realtime)."""
    import time

    return time.time_ns() - time.monotonic_ns()
