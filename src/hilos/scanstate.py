"""A port scan's state for the default checkpoint: discovery's answer and each scan's own state.

Saved only once the hosts to scan are known (discovery over, or -Pn) and every scan running can
say where it stands (the SYN scan: hilos.syn.resume); otherwise None, and a resumed run scans
the hosts not written yet from the start. A resumed run skips discovery (its answer is here),
rebuilds the same scans over the same hosts, and each goes on from its state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from hilos.results import HostResult, Written

__all__ = ["known", "snapshot", "stages", "unwritten"]

Stage = tuple[list[str] | None, Any]  # (hosts, None: the targets; the scanner, None: not made)


def snapshot(
    found: Iterable[HostResult] | None, stages: Sequence[Stage], written: Written
) -> dict[str, Any] | None:
    """The state of these scan stages (`found`: discovery's answer, None with -Pn)."""
    saved = []
    for hosts, scanner in stages:
        state = None
        if scanner is not None:
            take = getattr(scanner, "snapshot", None)
            state = take(written) if take is not None else None
            if state is None:
                return None  # a scan that cannot say where it stands: none of it is saved
        saved.append({"hosts": hosts, "state": state})
    rows = None if found is None else [[h.host, h.status, h.reason, h.rtt_ms] for h in found]
    return {"found": rows, "stages": saved}


def known(saved: Mapping[str, Any]) -> list[HostResult] | None:
    """Discovery's saved answer (None: the scan ran without discovery)."""
    rows = saved.get("found")
    if rows is None:
        return None
    return [HostResult(str(h), status, str(reason), rtt) for h, status, reason, rtt in rows]


def stages(saved: Mapping[str, Any]) -> list[tuple[list[str] | None, dict[str, Any] | None]]:
    """(hosts or None for the targets, saved state or None) per stage."""
    return [(s["hosts"], s["state"]) for s in saved["stages"]]


def unwritten(hosts: Sequence[HostResult], written: Written | None) -> list[HostResult]:
    """`hosts` without those the outputs already hold (a resumed run's)."""
    if written is None or not hosts:
        return list(hosts)
    flags = written([h.host for h in hosts])
    return [h for h, done in zip(hosts, flags, strict=True) if not done]
