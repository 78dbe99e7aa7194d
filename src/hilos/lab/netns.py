"""Namespaces, commands and processes: what building and tearing down a lab is made of."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hilos.errors import LabError, UsageError

STATE_ROOT = Path("/run/hilos-lab")
NETNS_DIR = Path("/run/netns")

# Interface names live inside the lab's own namespaces, so they never collide between labs.
IF_SCAN = "scan0"
IF_ROUTER_SCAN = "up0"
IF_ROUTER_HOSTS = "down0"
IF_HOSTS = "hosts0"
TUN_ROUTER = "dly0"
TUN_HOSTS = "dly1"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")
READY_TIMEOUT = 30.0
_FIX_ROOT = "run it as root, e.g. `sudo hilos lab up`"

SERVICE_MODULE = "hilos.lab.services"  # run as `python -m` in the hosts namespace
DELAYER_MODULE = "hilos.lab.delayer"  # run as `python -m` in the router namespace


# Running commands


def run_cmd(cmd: Sequence[str], *, stdin: str | None = None, timeout: float = 30.0) -> str:
    try:
        out = subprocess.run(
            list(cmd), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(
            f"{cmd[0]} not found: install iproute2 and nftables (`make system-deps`)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(cmd[:6])}` took longer than {timeout:g} s") from exc
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip().splitlines()
        raise LabError(f"`{' '.join(cmd[:6])}` failed: {' | '.join(detail[:3]) or out.returncode}")
    return out.stdout


def ip_batch(ns: str, lines: Sequence[str]) -> None:
    if lines:
        run_cmd(["ip", "-n", ns, "-batch", "-"], stdin="\n".join(lines) + "\n")


def in_ns(ns: str, *cmd: str, stdin: str | None = None) -> str:
    return run_cmd(["ip", "netns", "exec", ns, *cmd], stdin=stdin)


def ns_exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


class LabNameError(LabError, UsageError):
    """A lab name unfit for namespace names: bad user input (the CLI exits 2), still a LabError."""


def check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise LabNameError(
            f"bad lab name {name!r}: use 1-24 letters, digits, '-' or '_', starting with a letter "
            "or digit"
        )


def check_privileges() -> None:
    if sys.platform != "linux":
        raise LabError("the lab needs Linux network namespaces")
    if os.geteuid() != 0:
        raise LabError(f"the lab needs root (network namespaces, nftables): {_FIX_ROOT}")
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            raise LabError(f"`{tool}` not found: install {pkg} (`make system-deps`)")


def lab_namespaces(name: str) -> tuple[str, str, str]:
    return f"{name}-scan", f"{name}-net", f"{name}-hosts"


def state_dir(name: str) -> Path:
    return STATE_ROOT / name


# Processes


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # The state letter follows the parenthesised command name; a zombie has finished.
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop_pids(pids: Sequence[int], grace: float = 2.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = list(pids)
    while left and time.monotonic() < deadline:
        for pid in left:
            _reap(pid)
        left = [p for p in left if alive(p)]
        if left:
            time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for pid in left:
        for _ in range(100):
            _reap(pid)
            if not alive(pid):
                break
            time.sleep(0.01)


def ns_pids(ns: str) -> list[int]:
    if not ns_exists(ns):
        return []
    try:
        out = run_cmd(["ip", "netns", "pids", ns], timeout=10)
    except LabError:
        return []
    return [int(x) for x in out.split() if x.isdigit()]


def start_daemon(ns: str, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python args…` inside `ns`, detached (own session) so it outlives `hilos lab up`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_child_env(),
        )


def _child_env() -> dict[str, str]:
    # The children import hilos: make sure they find this very copy, installed or not.
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_ready(proc: subprocess.Popen[bytes], log: Path, what: str, deadline: float) -> None:
    while True:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            text = ""
        if re.search(r"(?m)^ready\b", text):
            return
        if proc.poll() is not None:
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise LabError(f"{what} exited with status {proc.returncode}: {tail or 'no output'}")
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not report ready within {READY_TIMEOUT:g} s (log: {log})")
        time.sleep(0.02)


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def read_state(name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir(name) / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
