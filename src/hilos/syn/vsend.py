"""The SYN scan's batched sender (issue 11): when the LinkTx path covers every host, a chunk of
the walk becomes frames filled in numpy (hilos.probes.vector.TcpVector) and leaves by one
sendmmsg per batch, instead of one struct.pack and one send() per probe."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import TYPE_CHECKING, Final

import numpy as np

from hilos.probes.vector import TcpVector
from hilos.wire.vector import FrameBatch

if TYPE_CHECKING:
    from hilos.syn.send import Sender

__all__ = ["VECTOR_BATCH", "VectorSend"]

VECTOR_BATCH: Final = 1024  # probes per numpy fill and sendmmsg
_PACE_STEP: Final = 32  # Sender.pace_wait accounts this many packets a call (send.BATCH)


class VectorSend:
    """Sends chunks of `sender`'s walk as batches of frames; same schedule, same accounting
    (coord.sent, the final bits, collected indices) as Sender.send_chunk."""

    def __init__(self, sender: Sender) -> None:
        link = sender.link
        assert link is not None
        table = sender.hosts.entries
        self.sender = sender
        self.addrs = np.array(
            [int.from_bytes(e[2] or b"\0\0\0\0", "big") for e in table], dtype=np.uint32
        )
        self.ports = np.array(sender.state.ports, dtype=np.uint16)
        self.np = sender.state.np
        self.final = np.frombuffer(sender.state.final, dtype=np.uint8)  # shared, live
        self.has = np.frombuffer(sender.state.has_code, dtype=np.uint8)
        probe = TcpVector(sender.engine.cookie, link.eth, link.source, df=True)
        self.batch = FrameBatch(probe, link.sock, VECTOR_BATCH)

    @classmethod
    def serving(cls, sender: Sender) -> VectorSend | None:
        """A VectorSend if `sender` sends every host by its link (IPv4, covered), else None:
        the per-probe loop keeps mixed tables."""
        if sender.link is None or not sender.hosts.entries:
            return None
        if any(e[5] is None for e in sender.hosts.entries):
            return None
        return cls(sender)

    def send_chunk(
        self,
        walk: Iterator[int],
        count: int,
        skip_final: bool,
        collect: list[int] | None,
        defer: bytearray | None = None,
    ) -> int:
        """Sender.send_chunk for this table: consume `count` indices of `walk`, send a SYN for
        each not yet final; returns how many indices were consumed."""
        idx = np.fromiter(islice(walk, count), dtype=np.int64)
        consumed = len(idx)
        if skip_final and consumed:
            bits = (self.final[idx >> 3] >> (idx & 7).astype(np.uint8)) & 1
            idx = idx[bits == 0]
        if defer is not None and len(idx):
            silent = self.has[idx // self.np] == 0
            put = idx[silent]  # distinct indices: one |= per byte and bit is exact
            bit = (1 << (put & 7)).astype(np.uint8)
            np.bitwise_or.at(np.frombuffer(defer, np.uint8), put >> 3, bit)
            idx = idx[~silent]
        sender = self.sender
        limited = not sender.bucket.unlimited
        sent = 0
        for start in range(0, len(idx), VECTOR_BATCH):
            part = idx[start : start + VECTOR_BATCH]
            if limited:
                sender.bucket.take(len(part))
            for _ in range(0, len(part), _PACE_STEP):
                sender.pace_wait()
            sent += self.batch.send(self.addrs[part // self.np], self.ports[part % self.np])
        sender.coord.sent(sent)
        if collect is not None:
            collect.extend(idx.tolist())
        return consumed
