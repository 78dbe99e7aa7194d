"""The lab's public API: Lab, LabStatus and teardown."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hilos.errors import LabError
from hilos.lab.build import ICMP_BURST, ICMP_RATE_PER_S, build_lab
from hilos.lab.netns import (
    alive,
    check_name,
    check_privileges,
    lab_namespaces,
    ns_exists,
    ns_pids,
    read_state,
    run_cmd,
    state_dir,
    stop_pids,
    write_json,
)
from hilos.lab.plan import plan_hosts
from hilos.lab.resolver import ETC_NETNS, remove_resolver
from hilos.lab.truth import build_truth
from hilos.lab.vantage import add_vantages, check_vantage, remove_vantage_files, vantage_namespaces


def teardown(name: str) -> bool:
    """Remove lab `name`: its processes, namespaces and state. Idempotent; works after a crash.

    Returns whether anything was there to remove.
    """
    check_name(name)
    check_privileges()
    found = False
    state = read_state(name)
    pids: set[int] = set()
    if state is not None:
        found = True
        for pid in (state.get("pids") or {}).values():
            if isinstance(pid, int) and _is_lab_process(pid):
                pids.add(pid)
    namespaces = [ns for ns in lab_namespaces(name) if ns_exists(ns)]
    namespaces += vantage_namespaces(name)
    remove_vantage_files(name)
    for ns in namespaces:
        # Whatever still runs inside the lab's namespaces belongs to the lab (or to `lab run`).
        pids.update(ns_pids(ns))
    pids.discard(os.getpid())
    if pids:
        stop_pids(sorted(pids))
    errors = []
    for ns in namespaces:
        found = True
        try:
            run_cmd(["ip", "netns", "del", ns])
        except LabError as exc:
            errors.append(str(exc))
    found = remove_resolver(name) or found
    sdir = state_dir(name)
    if sdir.exists():
        found = True
        shutil.rmtree(sdir, ignore_errors=True)
    if errors:
        raise LabError("; ".join(errors))
    return found


def _is_lab_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"hilos.lab" in cmdline  # hilos.lab.delayer, .services or .dns


# The public API


def _state_problems(name: str, state: Mapping[str, Any]) -> list[str]:
    """What the state file says is wrong: unfinished build, dead daemons, resolver files gone."""
    problems = []
    if not state.get("complete"):
        problems.append("not completely built (building, or crashed while building)")
    for what, pid in (state.get("pids") or {}).items():
        if not (isinstance(pid, int) and alive(pid)):
            problems.append(f"{what} (pid {pid}) is not running")
    if state.get("complete") and not (ETC_NETNS / f"{name}-scan" / "resolv.conf").exists():
        problems.append(f"{ETC_NETNS}/{name}-scan/resolv.conf missing")
    return problems


def _truth_counts(truth: Mapping[str, Any]) -> dict[str, int]:
    hosts = truth.get("hosts", [])
    ports = [p for h in hosts for p in h["ports"].values()]
    return {
        "hosts4": sum(1 for h in hosts if h["family"] == 4),
        "hosts6": sum(1 for h in hosts if h["family"] == 6),
        "icmp_silent": sum(1 for h in hosts if not h["icmp"]),
        "open_ports": sum(1 for p in ports if p["state"] == "open"),
        "filtered_ports": sum(1 for p in ports if p["state"] == "filtered"),
    }


@dataclass(frozen=True, slots=True)
class LabStatus:
    """What `hilos lab status` reports. `partial` means leftovers of a lab that is not fully up."""

    name: str
    up: bool
    partial: bool = False
    truth_path: str | None = None
    rtt_ms: float = 0.0
    loss_percent: float = 0.0
    icmp_ratelimit: bool = False
    hosts4: int = 0
    hosts6: int = 0
    icmp_silent: int = 0
    open_ports: int = 0
    filtered_ports: int = 0
    problems: tuple[str, ...] = ()

    @property
    def hosts(self) -> int:
        return self.hosts4 + self.hosts6


class Lab:
    """A running lab. Build one with `Lab.up(name)`, find a running one with `Lab.attach(name)`.

    `truth` is the truth file's content (see HELPERS.md); `run(cmd)` runs a command inside the
    scanner namespace, the only place the lab may be probed from.
    """

    def __init__(
        self,
        name: str,
        truth: dict[str, Any],
        procs: Mapping[str, subprocess.Popen[bytes]] | None = None,
    ) -> None:
        self.name = name
        self.truth = truth
        self._procs = dict(procs or {})

    @classmethod
    def up(
        cls,
        name: str = "hilos",
        *,
        rtt_ms: float = 0,
        loss_percent: float = 0,
        seed: int = 1,
        dense: int = 60,
        sparse: int = 500,
        ipv6: int = 6,
        vantage: int = 0,
        icmp_ratelimit: bool = False,
    ) -> Lab:
        """Build lab `name` and return it once every host answers. Raises LabError on failure.

        `icmp_ratelimit`: each host limits the destination unreachables it sends the scanner as
        Linux does by default (1 a second after a burst of 6); else they are unlimited."""
        check_name(name)
        check_privileges()
        check_vantage(vantage)
        if not 0 <= rtt_ms <= 10000:
            raise LabError(f"rtt must be between 0 and 10000 ms (asked {rtt_ms:g})")
        if not 0 <= loss_percent <= 100:
            raise LabError(f"loss must be between 0 and 100 percent (asked {loss_percent:g})")
        if rtt_ms > 0 and not os.path.exists("/dev/net/tun"):
            raise LabError("--rtt needs /dev/net/tun (modprobe tun)")
        plan = plan_hosts(seed, dense, sparse, ipv6)
        existing = [ns for ns in lab_namespaces(name) if ns_exists(ns)]
        if existing or state_dir(name).exists():
            raise LabError(f"lab {name!r} already exists: `hilos lab down --name {name}` first")
        truth = build_truth(name, plan, rtt_ms, loss_percent, seed)
        truth["icmp_ratelimit"] = (
            {"per_second": ICMP_RATE_PER_S, "burst": ICMP_BURST} if icmp_ratelimit else None
        )
        sdir = state_dir(name)
        sdir.mkdir(parents=True, mode=0o755)
        state: dict[str, Any] = {
            "name": name,
            "rtt_ms": float(rtt_ms),
            "loss_percent": float(loss_percent),
            "icmp_ratelimit": bool(icmp_ratelimit),
            "seed": seed,
            "owner_pid": os.getpid(),
            "started": time.time(),
            "complete": False,
            "pids": {},
        }
        state_path = sdir / "state.json"
        write_json(state_path, state)
        try:
            procs = build_lab(name, plan, rtt_ms, loss_percent, state, state_path, icmp_ratelimit)
            add_vantages(name, vantage)  # scanner namespaces for a cluster's members
            write_json(sdir / "truth.json", truth)
            state["complete"] = True
            write_json(state_path, state)
        except BaseException:
            with contextlib.suppress(LabError):
                teardown(name)
            raise
        return cls(name, truth, procs)

    @classmethod
    def attach(cls, name: str = "hilos") -> Lab:
        """The running lab `name` (built earlier, maybe by another process), ready to `run`."""
        check_name(name)
        check_privileges()  # entering its namespaces needs root
        st = cls.status(name)
        if not st.up or st.truth_path is None:
            why = f" ({'; '.join(st.problems)})" if st.problems else ""
            raise LabError(f"lab {name!r} is not up{why}: `hilos lab up --name {name}`")
        truth = json.loads(Path(st.truth_path).read_text())
        return cls(name, truth)

    @staticmethod
    def status(name: str = "hilos") -> LabStatus:
        """Whether lab `name` is up (namespaces, processes, truth file all there) and its counts."""
        check_name(name)
        state = read_state(name)
        namespaces = [ns for ns in lab_namespaces(name) if ns_exists(ns)]
        if state is None and not namespaces:
            return LabStatus(name, up=False)
        problems = [
            f"namespace {ns} missing" for ns in lab_namespaces(name) if ns not in namespaces
        ]
        if state is None:
            problems.append("state file missing")
            return LabStatus(name, up=False, partial=True, problems=tuple(problems))
        problems += _state_problems(name, state)
        truth_path = state_dir(name) / "truth.json"
        truth: dict[str, Any] = {}
        try:
            truth = json.loads(truth_path.read_text())
        except (OSError, ValueError):
            problems.append("truth file missing")
        return LabStatus(
            name,
            up=not problems,
            partial=bool(problems),
            truth_path=str(truth_path) if truth else None,
            rtt_ms=float(state.get("rtt_ms", 0.0)),
            loss_percent=float(state.get("loss_percent", 0.0)),
            icmp_ratelimit=bool(state.get("icmp_ratelimit", False)),
            problems=tuple(problems),
            **_truth_counts(truth),
        )

    @property
    def scanner_ns(self) -> str:
        return f"{self.name}-scan"

    @property
    def router_ns(self) -> str:
        return f"{self.name}-net"

    @property
    def hosts_ns(self) -> str:
        return f"{self.name}-hosts"

    @property
    def truth_path(self) -> Path:
        return state_dir(self.name) / "truth.json"

    def run(
        self, cmd: Sequence[str], timeout: float | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run `cmd` inside the scanner namespace. Output is captured as text unless `kw` says
        otherwise (stdout=…, capture_output=…, text=…)."""
        if not any(k in kw for k in ("stdout", "stderr", "capture_output")):
            kw["capture_output"] = True
        if not any(k in kw for k in ("text", "encoding", "errors", "universal_newlines")):
            kw["text"] = True
        return subprocess.run(
            ["ip", "netns", "exec", self.scanner_ns, *cmd], timeout=timeout, check=False, **kw
        )

    def down(self) -> None:
        """Remove the lab (idempotent)."""
        teardown(self.name)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._procs.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, hosts={len(self.truth.get('hosts', []))})"
