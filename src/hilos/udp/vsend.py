"""The UDP scan's batched sender (issue 11's engine): IPv4 probes of a pass as numpy-filled frames,
one sendmmsg per batch of a payload kind, instead of one build and one sendto per probe."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import numpy as np

from hilos.probes.udp_payloads import PORT_KINDS, ROTATION, kind_for
from hilos.probes.udp_vector import UdpVector
from hilos.targets import Permutation
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.sockets import raw_socket
from hilos.wire.vector import FrameBatch, walk_batches

if TYPE_CHECKING:
    from hilos.udp.scanner import UdpScanner

__all__ = ["BATCH", "VectorSend"]

BATCH: Final = 256  # frames per numpy fill and sendmmsg
_WALK: Final = 4096  # indices of the walk per numpy step
_TICK_SHIFT: Final = 20  # hilos.udp.state's send-time ticks


class VectorSend:
    """Sends the IPv4 part of each pass of `scanner` (the scalar loop keeps IPv6)."""

    def __init__(self, scanner: UdpScanner) -> None:
        tg, st = scanner.targets, scanner.state
        self.scanner = scanner
        self.sock = raw_socket(socket.AF_INET, socket.IPPROTO_RAW, "IPv4")
        self.addrs = np.array(
            [a if f == 4 else 0 for a, f in zip(tg.ints, tg.families, strict=True)], np.uint32
        )
        self.v4 = np.array([f == 4 for f in tg.families], dtype=np.bool_)
        self.ports = np.array(st.ports, dtype=np.uint16)
        self.np = st.np
        self.rotating = np.array([p not in PORT_KINDS for p in st.ports], dtype=np.bool_)
        self.final = np.frombuffer(st.final, dtype=np.uint8)  # live views of the state
        self.answered = np.frombuffer(st.answered, dtype=np.uint8)
        self.ticks = np.frombuffer(st.ticks, dtype=np.uint16)
        self.skip = None if scanner.skip is None else np.frombuffer(scanner.skip, np.uint8)
        self._batches: dict[str, FrameBatch] = {}

    def close(self) -> None:
        self.sock.close()

    def _batch(self, kind: str) -> FrameBatch:
        b = self._batches.get(kind)
        if b is None:
            probe = UdpVector(self.scanner.targets.cookie, kind)
            b = self._batches[kind] = FrameBatch(probe, self.sock, BATCH, addressed=True)
        return b

    def send_pass(
        self,
        attempt: int,
        bucket: TokenBucket,
        cancel: threading.Event,
        skip: int = 0,
        mark: Callable[[int], None] | None = None,
    ) -> int:
        """Attempt `attempt` to every IPv4 index of the walk not yet final; returns frames sent.
        `skip`: batches of the walk sent before (a resumed scan's); `mark(batches)` after each."""
        sc = self.scanner
        perm = Permutation(sc.state.total, sc.seed)
        base = [kind_for(int(p), attempt) for p in self.ports]
        kinds = sorted(set(base) | (set(ROTATION[1:]) if attempt else set()))
        base_arr = np.array([kinds.index(k) for k in base], dtype=np.int64)
        sent = n = 0
        # At a --rate, batches of ~20 ms: a resumed scan goes on batch by batch (udp.resume).
        size = _WALK if bucket.rate is None else min(_WALK, max(64, int(bucket.rate * 0.02)))
        for n, idx in enumerate(walk_batches(perm, size, sc.shard)):
            if n > skip and mark is not None:
                mark(n)  # the batches before this one are sent
            if cancel.is_set():
                return sent
            if n < skip:
                continue
            h, pi = idx // self.np, idx % self.np
            keep = self.v4[h] & ((self.final[idx >> 3] >> (idx & 7).astype(np.uint8)) & 1 == 0)
            if self.skip is not None:
                keep &= self.skip[h] == 0
            idx, h, pi = idx[keep], h[keep], pi[keep]
            if not len(idx):
                continue
            # A port without a payload of its own, on a host that answered: every payload.
            every = (self.answered[h] == 1) & self.rotating[pi] if attempt else None
            for k, kind in enumerate(kinds):
                sel = base_arr[pi] == k
                if every is not None and kind in ROTATION[1:]:
                    sel |= every
                sent += self._send(kind, idx[sel], h[sel], pi[sel], bucket)
        if mark is not None:
            mark(n + 1)
        return sent

    def _send(
        self, kind: str, idx: np.ndarray, h: np.ndarray, pi: np.ndarray, bucket: TokenBucket
    ) -> int:
        if not len(h):
            return 0
        batch = self._batch(kind)
        addrs, ports = self.addrs[h], self.ports[pi]
        sent = 0
        for start in range(0, len(h), BATCH):
            part = slice(start, start + BATCH)
            n = len(addrs[part])
            if not bucket.unlimited:
                bucket.take(n)
            # Send times per batch, just before it goes: round trips exclude our own queue.
            self.ticks[idx[part]] = (time.monotonic_ns() >> _TICK_SHIFT) & 0xFFFF
            done = batch.send(addrs[part], ports[part])
            sent += done
            self.scanner.state.add_sent(done)  # as it goes: the progress line, a checkpoint
        return sent
