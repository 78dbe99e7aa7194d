"""Where a UDP scan stands, for the default checkpoint, and a scan that goes on from there.

The UDP scan walks every pass over the keyed walk (the batched engine a batch of the walk at a
time, then the per-probe path for what it does not send). `Marks` notes how far each pass got,
and when; a snapshot keeps the last mark whose answers are all in (the receiver has handled
everything up to one wait after it), with the answers so far (codes, the replies that name
services, host-level unreachables, RTTs, the signs of loss). A resumed scan takes them back,
goes on with that pass from there, never probes or reports a host already written, and
reports the hosts complete but not written. The unprivileged path keeps no state.
"""

from __future__ import annotations

import base64
import threading
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hilos.results import Written, unwritten_archive
from hilos.udp.state import CLOSED

if TYPE_CHECKING:
    from hilos.udp.state import UdpState

__all__ = ["Marks", "restore", "snapshot"]


#: (attempt, batches of the batched engine's walk, positions of the per-probe walk)
At = tuple[int, int, int]


class Marks:
    """How far the passes got: (time.monotonic(), attempt, batches, positions) marks, from
    the sender thread; `settled(before)` is the last one made by `before`."""

    def __init__(self, start: At = (0, 0, 0)) -> None:
        self.start = start
        self._marks: list[tuple[float, At]] = [(-1.0, start)]
        self._lock = threading.Lock()

    def mark(self, at: At, when: float) -> None:
        with self._lock:
            self._marks.append((when, at))
            if len(self._marks) > 256:
                del self._marks[:128]

    def settled(self, before: float) -> At:
        """The furthest mark made by `before` (marks come in the order of progress; a pass
        whose answers were all awaited is marked at time -1: settled at once)."""
        with self._lock:
            return next((at for t, at in reversed(self._marks) if t <= before), self.start)


def _pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 1)).decode("ascii")


def _unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def snapshot(st: UdpState, at: At, lossy: bool, written: Written) -> dict[str, Any]:
    """The scan's state with `at` (settled: see Marks). Hosts already reported but not written
    keep their answers (the state's `archive`), as in hilos.syn.resume: a resumed scan reports
    them again; those written leave the archive."""
    with st.lock:
        final = bytes(st.final)
        codes = dict(st.codes)
        replies = {i: bytes(r) for i, r in st.replies.items()}
        unreach = dict(st.host_unreach)
        rtt = dict(st.rtt)
        signs = st.loss_signs
        est = (st.est.srtt, st.est.rttvar, st.small.srtt, st.small.rttvar)
        peaks = (st.peak_ms, st.min_ms, st.small_peak_ms)
        archive = dict(st.archive or {})
    done, kept = unwritten_archive(archive, st.targets.names, written)
    with st.lock:
        for h in done:
            (st.archive or {}).pop(h, None)
    for saved_codes, saved_replies in kept:
        codes.update(saved_codes)
        replies.update(saved_replies)
    return {
        "at": list(at),
        "lossy": lossy,
        "total": st.total,
        "final": _pack(final),
        "codes": [[i, c] for i, c in codes.items()],
        "replies": [[i, base64.b64encode(r).decode("ascii")] for i, r in replies.items()],
        "unreach": [[h, c] for h, c in unreach.items()],
        "rtt": [[h, ms] for h, ms in rtt.items()],
        "signs": signs,
        "est": list(est),
        "peaks": [p if p != float("inf") else None for p in peaks],
    }


def restore(st: UdpState, saved: dict[str, Any], written: Written) -> None:
    """Take back a snapshot of the same scan (hosts, ports, seed): see the module docstring."""
    final = _unpack(saved["final"])
    if int(saved["total"]) != st.total or len(final) != len(st.final):
        raise ValueError("the saved scan state does not fit this scan")
    np_ = st.np
    flags = list(written(st.targets.names))
    expected = st.expected
    with st.lock:
        st.final[:] = final
        for i, c in saved["codes"]:
            st.codes[int(i)] = int(c)
            st.answered[int(i) // np_] = 1
            st.closed[int(i) // np_] += int(c) == CLOSED
        st.replies.update((int(i), base64.b64decode(r)) for i, r in saved["replies"])
        st.host_unreach.update((int(h), int(c)) for h, c in saved["unreach"])
        st.rtt.update((int(h), float(ms)) for h, ms in saved["rtt"])
        st.loss_signs = int(saved["signs"])
        srtt, rttvar, small_srtt, small_rttvar = saved["est"]
        if srtt >= 0:
            st.est.restore(srtt, rttvar)
        if small_srtt >= 0:
            st.small.restore(small_srtt, small_rttvar)
        peak, low, small_peak = saved["peaks"]
        st.peak_ms, st.small_peak_ms = float(peak), float(small_peak)
        st.min_ms = float("inf") if low is None else float(low)
        _count(st, flags, expected)


def _count(st: UdpState, written: list[bool], expected: Sequence[int] | None) -> None:
    """Per host: written ones over (every bit set, reported), the others' final bits counted,
    the complete ones queued to be reported (the lock held)."""
    import numpy as np  # only for a resumed scan: a UDP scan loads it in the background

    np_, nh = st.np, len(st.targets)
    flags = np.asarray(written, dtype=bool).reshape(nh)
    bits = np.frombuffer(st.final, np.uint8)
    want = np.full(nh, np_) if expected is None else np.asarray(expected)
    hosts = np.flatnonzero(flags)
    if len(hosts):
        every = (hosts[:, None] * np_ + np.arange(np_)).ravel()
        np.bitwise_or.at(bits, every >> 3, (1 << (every & 7)).astype(np.uint8))
        np.frombuffer(st.reported, np.uint8)[hosts] = 1
    done = np.unpackbits(bits, bitorder="little")[: nh * np_].reshape(nh, np_).sum(axis=1)
    done = np.where(flags, want, done)
    st.done[:] = done.tolist()
    st.final_count = int(done.sum())
    st.hosts_done = len(hosts)
    for h in np.flatnonzero((done >= want) & (want > 0) & ~flags).tolist():
        st.hosts_done += 1
        st.completed.put(h)
