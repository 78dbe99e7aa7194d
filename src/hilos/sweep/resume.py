"""Where a sweep stands, for the default checkpoint, and a sweep that goes on from there.

A sweep's frame senders take the /24 blocks of a pass in numbered chunks, in order (wire.senders
Claims), and mark each chunk done: the chunks from the first whose every answer is in (done one
wait ago) are how far the pass got. With the answers so far (up hosts and unreachables), the
passes planned and the loss measured, that is the sweep's state. A resumed sweep takes it back:
that pass goes on after those chunks (the addresses before them count as probed: a retry pass
asks them again if the loss measured calls for one, as it would have), nothing answered is
probed again, and hosts found but not written yet are reported again (without their RTT).
Sweeps that do not send every probe as frames (IPv6, without privileges, the batched 127/8
sweep) keep no state: their resumed run probes every address not written yet. The functions
here read and fill the Sweeper's own fields: they are its part that a checkpoint needs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hilos.results import Written
from hilos.sweep.base import UP_REASONS, host_str
from hilos.targets import TargetSpace

if TYPE_CHECKING:
    from hilos.sweep.sweeper import Sweeper

__all__ = ["restore", "snapshot"]

_MARGIN = 0.1  # seconds


def _frames_only(sw: Sweeper) -> bool:
    """Whether the frame sender sends every probe of every pass (the state's premise)."""
    frames, link, space = sw._frames, sw._link, sw._given
    if frames is None or link is None or not isinstance(space, TargetSpace) or space.size_v6:
        return False
    if any(e is not frames.icmp and e is not frames.tcpe for e in sw.engines):
        return False
    return all(link.covers_range(int(a), int(b)) for a, b in space.iter_ranges())


def snapshot(sw: Sweeper, written: Written) -> dict[str, Any] | None:
    """The sweep's state now, or None when it keeps none (see the module docstring)."""
    if sw.dense is not None or not _frames_only(sw):
        return None
    frames = sw._frames
    assert frames is not None
    claims = frames.claims  # the pass in progress (or the last one)
    at = (0, 0, 0)
    if claims is not None:
        # Answers due one wait after a chunk (what the sweep's own last wait assumes), and a
        # margin for a receiver thread that lags behind its socket.
        before = time.monotonic() - sw._wait() - _MARGIN
        at = (claims.tag, claims.settled(before), claims.count)
    with sw._lock:
        answered = dict(sw._answered)
    ups = [k for k, r in answered.items() if r in UP_REASONS]
    flags = written([host_str(k) for k in ups]) if ups else []
    est = sw._rtt
    return {
        "pass": at[0],
        "chunk": at[1],
        "chunks": at[2],
        "passes": sw.planned,
        "loss": list(sw._loss.measured) if sw._loss.measured else None,
        "rtt": [est.srtt, est.rttvar],
        "answered": [[k, r] for k, r in answered.items()],
        "unwritten": [k for k, done in zip(ups, flags, strict=True) if not done],
    }


def restore(sw: Sweeper, saved: Mapping[str, Any]) -> None:
    """Take a snapshot back (the same targets, options and seed): see the module docstring."""
    answered = {int(k): str(r) for k, r in saved["answered"]}
    sw._answered.update(answered)
    sw._up = sum(r in UP_REASONS for r in answered.values())
    for key in saved["unwritten"]:  # found, not in the outputs: reported first
        sw._queue.put(sw._result(int(key), "up", answered[int(key)], None))
    srtt, rttvar = saved["rtt"]
    if srtt >= 0:
        sw._rtt.restore(float(srtt), float(rttvar))
    loss = saved.get("loss")
    sw._loss.measured = (int(loss[0]), int(loss[1])) if loss else None
    sw.planned = max(sw.planned, int(saved["passes"]))
    sw.start_at = (int(saved["pass"]), int(saved["chunk"]))
