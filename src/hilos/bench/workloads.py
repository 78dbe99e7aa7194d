"""The benchmark workloads: a per-item function and its items (sleep, pure Python, TCP connects)."""

from __future__ import annotations

import errno
import itertools
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hilos.errors import UsageError, from_oserror

__all__ = [
    "CPU_STEPS",
    "DEFAULT_PORTS",
    "DEFAULT_TASKS",
    "WORKLOADS",
    "Workload",
    "connect_workload",
    "cpu_workload",
    "demo_workload",
    "make_workload",
]

WORKLOADS = ("demo", "cpu", "sweep", "scan")
DEFAULT_TASKS = {"demo": 64, "cpu": 200, "sweep": 256}
"""Tasks per run when --tasks is not given; scan defaults to every (target, port) pair."""
DEFAULT_PORTS = {"scan": "1-1024", "sweep": "80,443"}
CPU_STEPS = 5000
"""Iterations of the cpu task's loop: about a millisecond of pure Python."""


@dataclass(frozen=True, slots=True)
class Workload:
    """The work of one benchmark: a per-item function and a fresh iterable of items per run."""

    name: str
    description: str
    fn: Callable[[Any], object]
    items: Callable[[], Iterable[Any]]
    tasks: int
    tally: bool = False
    """Count the values the tasks return (port states, host states) into the outcomes."""


def demo_workload(tasks: int = DEFAULT_TASKS["demo"], sleep: float = 0.05) -> Workload:
    """Sleep-bound tasks, as in ``hilos demo`` but silent."""

    def sleeper(item: int) -> int:
        time.sleep(sleep)
        return item

    return Workload(
        "demo", f"{tasks} tasks, each sleep({sleep:g} s)", sleeper, lambda: range(tasks), tasks
    )


def _cpu_task(seed: int) -> int:
    # A linear congruential generator: pure bytecode, no call that could release the GIL.
    x = seed
    for _ in range(CPU_STEPS):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def cpu_workload(tasks: int = DEFAULT_TASKS["cpu"]) -> Workload:
    """CPU-bound tasks in pure Python: the GIL lets one thread compute at a time."""
    return Workload(
        "cpu",
        f"{tasks} tasks, each {CPU_STEPS} steps of pure-Python arithmetic",
        _cpu_task,
        lambda: range(tasks),
        tasks,
    )


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}


def _connect(host: str, port: int, timeout: float) -> str:
    """One blocking TCP connect, as the tutorial's scanner does it: open, closed or filtered."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise from_oserror(exc, "creating a TCP socket", fix="raise ulimit -n") from exc
    try:
        sock.settimeout(timeout)
        # Close with RST rather than FIN: a benchmark that opens thousands of connections would
        # otherwise fill the table with TIME_WAIT entries and slow its own later runs.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.connect((host, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except TimeoutError:
        return "filtered"
    except OSError as exc:
        if exc.errno in _UNREACHABLE:
            return "unreachable"
        raise from_oserror(exc, f"connecting to {host} port {port}") from exc
    finally:
        sock.close()


def connect_workload(
    kind: str,
    targets: Sequence[str] | Any,
    ports: Sequence[int],
    *,
    timeout: float = 1.0,
    tasks: int | None = None,
) -> Workload:
    """Blocking TCP connects through the pool: ``scan`` = one task per (host, port), ``sweep`` =
    one task per host (up if any of ``ports`` answers, with SYN-ACK or RST).

    ``targets`` is any sized, re-iterable collection of addresses (a list of strings or a
    :class:`hilos.targets.TargetSpace`); it is walked lazily. ``tasks`` truncates the work, or
    repeats it round-robin to reach ``tasks`` items (a sweep of one loopback host 256 times).
    """
    if kind not in ("scan", "sweep"):
        raise UsageError(f"bench: unknown connect workload {kind!r}")
    if not ports:
        raise UsageError(f"bench: {kind} needs at least one port")
    if not timeout > 0:
        raise UsageError(f"bench: --timeout must be positive, not {timeout}")
    port_list = tuple(ports)
    per_host = len(port_list) if kind == "scan" else 1
    size = len(targets) * per_host
    if size == 0:
        raise UsageError(f"bench: {kind} has no targets")
    count = size if tasks is None else tasks

    def one_pass() -> Iterator[Any]:
        for address in targets:
            host = str(address)
            if kind == "scan":
                for port in port_list:
                    yield (host, port)
            else:
                yield host

    def items() -> Iterator[Any]:
        # Lazy round-robin: never a list of the whole target space.
        return itertools.islice(itertools.chain.from_iterable(_forever(one_pass)), count)

    if kind == "scan":

        def scan_one(item: tuple[str, int]) -> str:
            return _connect(item[0], item[1], timeout)

        fn: Callable[[Any], object] = scan_one
        hosts = len(targets)
        what = (
            f"{count} connects ({hosts} host{'s' if hosts != 1 else ''} x {len(port_list)} "
            f"port{'s' if len(port_list) != 1 else ''}), timeout {timeout:g} s"
        )
    else:

        def sweep_one(host: str) -> str:
            for port in port_list:
                if _connect(host, port, timeout) in ("open", "closed"):
                    return "up"
            return "down"

        fn = sweep_one
        shown = ",".join(map(str, port_list[:4])) + ("..." if len(port_list) > 4 else "")
        what = f"{count} hosts, each TCP connect to port {shown} until one answers, "
        what += f"timeout {timeout:g} s"
    return Workload(kind, what, fn, items, count, tally=True)


def _forever(make: Callable[[], Iterator[Any]]) -> Iterator[Iterator[Any]]:
    while True:
        yield make()


def make_workload(
    name: str,
    *,
    tasks: int | None = None,
    sleep: float = 0.05,
    targets: Iterable[str] = ("127.0.0.1",),
    ports: str | None = None,
    timeout: float = 1.0,
) -> Workload:
    """Build a workload by its ``--workload`` name from the command's options.

    Example::

        result = run_bench(make_workload("scan", ports="1-1024"), (1, 2, 4, 8), repeat=3)
    """
    if name == "demo":
        return demo_workload(DEFAULT_TASKS["demo"] if tasks is None else tasks, sleep)
    if name == "cpu":
        return cpu_workload(DEFAULT_TASKS["cpu"] if tasks is None else tasks)
    if name in ("scan", "sweep"):
        from hilos.targets import parse_ports, parse_targets

        space = parse_targets(list(targets))
        port_list = parse_ports(ports if ports is not None else DEFAULT_PORTS[name])
        if tasks is None and name == "sweep":
            tasks = DEFAULT_TASKS["sweep"]
        return connect_workload(name, space, port_list, timeout=timeout, tasks=tasks)
    raise UsageError(f"bench: unknown workload {name!r} (choose from {', '.join(WORKLOADS)})")
