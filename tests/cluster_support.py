"""A throwaway hilos cluster for tests: certificates, a scheduler and workers as processes.

Everything listens on loopback (or inside a lab namespace, with `prefix` = ip netns exec ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HILOS = [sys.executable, "-m", "hilos"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A scheduler at `address` and named workers; `stop()` ends every process it started."""

    certs: Path
    address: str
    prefix: list[str] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: Path | None = None

    def _start(self, name: str, args: list[str]) -> None:
        log = open(self.certs.parent / f"{name}.log", "wb")  # noqa: SIM115 - the process owns it
        self.procs[name] = subprocess.Popen(
            [*self.prefix, *HILOS, "cluster", *args], stdout=log, stderr=log
        )

    def start_scheduler(self) -> None:
        self._start(
            "scheduler", ["scheduler", "--listen", self.address, "--certs", str(self.certs)]
        )

    def start_worker(self, name: str, rate: float | None = None) -> None:
        args = ["worker", self.address, "--certs", str(self.certs), "--name", name]
        if rate is not None:
            args += ["--rate", str(rate)]
        self._start(name, args)

    def security(self, certs: Path | None = None) -> Any:
        from distributed.security import Security

        d = certs or self.certs
        return Security(
            tls_ca_file=str(d / "ca.pem"),
            tls_client_cert=str(d / "node.pem"),
            tls_client_key=str(d / "node.key"),
            require_encryption=True,
        )

    def wait_for_workers(self, n: int, timeout: float = 40.0) -> None:
        """Until `n` workers are connected (asked by a client of our own CA, in the same
        network namespace as the cluster)."""
        code = (
            "import sys, time\n"
            "from distributed import Client\n"
            "from distributed.security import Security\n"
            f"d = {str(self.certs)!r}\n"
            "sec = Security(tls_ca_file=d + '/ca.pem', tls_client_cert=d + '/node.pem',"
            " tls_client_key=d + '/node.key', require_encryption=True)\n"
            f"deadline = time.monotonic() + {timeout}\n"
            "while True:\n"
            "    try:\n"
            f"        with Client({self.address!r}, security=sec, timeout=5) as c:\n"
            f"            c.wait_for_workers({n}, timeout=max(deadline - time.monotonic(), 1))\n"
            "            break\n"
            "    except (OSError, TimeoutError):\n"
            "        if time.monotonic() > deadline: raise\n"
            "        time.sleep(0.5)\n"
        )
        subprocess.run(
            [*self.prefix, sys.executable, "-c", code],
            check=True,
            timeout=timeout + 20,
            capture_output=True,
        )

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def make_cluster(
    tmp: Path, workers: int, rate: float | None = None, prefix: list[str] | None = None
) -> Cluster:
    """Certificates in `tmp`, a TLS scheduler on a free loopback port, `workers` workers
    named w1..wN, all connected before it returns."""
    certs = tmp / "certs"
    subprocess.run(
        [*(prefix or []), *HILOS, "cluster", "certs", str(certs)],
        check=True,
        capture_output=True,
    )
    cluster = Cluster(certs, f"tls://127.0.0.1:{free_port()}", list(prefix or []))
    cluster.start_scheduler()
    try:
        for i in range(1, workers + 1):
            cluster.start_worker(f"w{i}", rate)
        cluster.wait_for_workers(workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def pids_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 0)
            alive.append(pid)
    return alive


def wait_for(checkpoint: Path, key: str, timeout: float = 60.0) -> None:
    """Until the checkpoint's `key` is set: a running job's progress ("chunks": discovery is
    over; "done": some chunks are in; "written": some hosts went out)."""

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(checkpoint.read_text())[key]:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"{checkpoint}: no {key} after {timeout} s")
