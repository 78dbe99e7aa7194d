"""Where a SYN scan stands, for a checkpoint, and a scan that goes on from there.

zmap keeps no state and masscan saves only its permutation index, so a resumed masscan sends
again what was in flight and loses the answers it had. A SYN scan's whole state is small: one
final bit per probe, the codes of the answered ones, and how far each sender's first pass has
walked (`Cursors`). A resumed scan takes those back (`restore`): its first passes start where
they were, the probes walked before that count as sent once (resent only if still unanswered,
as an uninterrupted scan's retry would), the hosts already written are never reported again,
and those reported but not written yet are reported again from their saved answers. So what is
sent twice is what was sent after the last save, plus retries in flight.
"""

from __future__ import annotations

import base64
import itertools
import mmap
import struct
import zlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hilos.results import Written, unwritten_archive

if TYPE_CHECKING:
    from hilos.syn.state import ScanState

__all__ = ["Cursors", "restore", "snapshot", "walked"]

_SLOT = struct.Struct("=Q")


class Cursors:
    """Per part of the walk, how many of its indices the first pass has sent: shared memory,
    so a forked sender process writes its own slot and the parent reads them all."""

    def __init__(self, parts: Sequence[tuple[int, int]], start: Sequence[int] = ()) -> None:
        self.parts: list[tuple[int, int]] = [(int(i), int(n)) for i, n in parts]
        self.resumed = bool(start)  # a resumed scan's (its first pass skips final probes)
        self.start = list(start) or [0] * len(self.parts)
        self.mem = mmap.mmap(-1, 8 * max(1, len(self.parts)))
        for slot, value in enumerate(self.start):
            _SLOT.pack_into(self.mem, 8 * slot, value)

    def slot(self, part: tuple[int, int]) -> int:
        return self.parts.index(part)

    def add(self, slot: int, n: int) -> None:
        _SLOT.pack_into(self.mem, 8 * slot, _SLOT.unpack_from(self.mem, 8 * slot)[0] + n)

    def values(self) -> list[int]:
        return [_SLOT.unpack_from(self.mem, 8 * i)[0] for i in range(len(self.parts))]


def _pack(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data, 1)).decode("ascii")


def _unpack(text: str) -> bytes:
    return zlib.decompress(base64.b64decode(text))


def snapshot(state: ScanState, cursors: Cursors, written: Written) -> dict[str, Any]:
    """The scan's state now. Hosts already reported but not in the outputs yet (between the
    scan and the writer when the save came) keep their answers (the state's `archive`): a
    resumed scan reports them again; those written leave the archive."""
    import numpy as np

    # The cursors first: a chunk counts there only once the receiver has handled every answer
    # due for it, so the bits read next hold them all (read after, a cursor could run ahead).
    cur = cursors.values()
    with state.lock:
        final = bytes(state.final)
        codes = dict(state.codes)
        rtt = dict(state.rtt)
        archive = dict(state.archive or {})
    done, kept = unwritten_archive(archive, state.hosts.names, written)
    with state.lock:
        for h in done:
            (state.archive or {}).pop(h, None)
    for saved in kept:
        codes.update(saved)
    idx = np.fromiter(codes.keys(), np.uint64, len(codes))
    return {
        "parts": [list(p) for p in cursors.parts],
        "cursors": cur,
        "total": len(state.final),
        "final": _pack(final),
        "answered": _pack(idx.tobytes()),
        "codes": _pack(np.fromiter(codes.values(), np.uint8, len(codes)).tobytes()),
        "rtt": [[h, ms] for h, ms in rtt.items()],
    }


def restore(state: ScanState, saved: dict[str, Any], written: Written) -> None:
    """Take back a snapshot (same hosts, ports, seed and parts): final bits, codes, RTTs; hosts
    the outputs hold are marked reported, hosts complete but not written are queued to be."""
    import numpy as np

    final = np.frombuffer(_unpack(saved["final"]), np.uint8)
    if int(saved["total"]) != len(state.final) or len(final) != len(state.final):
        raise ValueError("the saved scan state does not fit this scan")
    idx = np.frombuffer(_unpack(saved["answered"]), np.uint64).astype(np.int64)
    codes = np.frombuffer(_unpack(saved["codes"]), np.uint8)
    nh, np_ = len(state.hosts), state.np
    done = np.unpackbits(final, bitorder="little")[: nh * np_].reshape(nh, np_).sum(axis=1)
    flags = np.asarray(written(state.hosts.names), dtype=bool) if nh else np.zeros(0, bool)
    expected = np.full(nh, np_) if state.expected is None else np.asarray(state.expected)
    with state.lock:
        state.final[:] = final.tobytes()
        state.codes.update(zip(idx.tolist(), codes.tolist(), strict=True))
        np.frombuffer(state.has_code, np.uint8)[idx // np_] = 1
        state.rtt.update((int(h), float(ms)) for h, ms in saved["rtt"])
        state.answered = len(idx)
        state.done[:] = done.tolist()
        # A host written is over whatever its bits say: never probed or reported again.
        hosts = np.flatnonzero(flags)
        if len(hosts):
            bits = np.frombuffer(state.final, np.uint8)
            every = (hosts[:, None] * np_ + np.arange(np_)).ravel()
            np.bitwise_or.at(bits, every >> 3, (1 << (every & 7)).astype(np.uint8))
            np.frombuffer(state.reported, np.uint8)[hosts] = 1
            for h in hosts.tolist():
                state.done[h] = int(expected[h])
        state.final_count = sum(state.done)
        state.hosts_done = int(flags.sum())
        for h in np.flatnonzero((done >= expected) & ~flags).tolist():
            state.hosts_done += 1
            state.completed.put(h)


def walked(
    walk: Iterator[int], n: int, chunk: int, last: bool
) -> list[tuple[float, int, list[int] | None]]:
    """The first `n` indices of `walk` as first-pass chunks sent long ago (time 0): a resumed
    scan's first pass goes on after them, and its retries and give-ups take them as they come."""
    out: list[tuple[float, int, list[int] | None]] = []
    while n > 0:
        take = min(chunk, n)
        part = list(itertools.islice(walk, take))
        out.append((0.0, len(part), part if last else None))
        n -= take
        if len(part) < take:
            break
    return out
