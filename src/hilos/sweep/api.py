"""sweep(): the library's one-call sweep, every argument checked as the CLI checks it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from hilos.results import HostResult
from hilos.sweep.base import Address, Method, SweepProgress
from hilos.sweep.sweeper import Sweeper
from hilos.targets import TargetSpace

__all__ = ["sweep"]


def sweep(
    targets: TargetSpace | Iterable[Address],
    *,
    method: Method = "auto",
    rate: float | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    threads: int | None = None,
    randomize: bool = False,
    seed: int | None = None,
    all_hosts: bool = False,
    on_progress: Callable[[SweepProgress], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> Iterator[HostResult]:
    """Sweep `targets` and yield a HostResult per up host as it answers (see Sweeper).

    `targets` is a TargetSpace, one spec (``"127.0.0.1"``, ``"127.0.0.0/30"``, ``"localhost"``,
    an int) or an iterable of them. Every argument is checked before anything is sent, as the
    CLI checks it: bad values raise InvalidArgument, bad targets TargetError, names that do not
    resolve ResolveError (all HilosError subclasses; see hilos.validate).

    for r in sweep(["127.0.0.1", "::1"], method="icmp", timeout=0.5):
        print(r.host, r.reason, r.rtt_ms)
    """
    from hilos import validate
    from hilos.errors import InvalidArgument

    if method not in ("auto", "icmp", "tcp"):
        raise InvalidArgument(f"method must be auto, icmp or tcp, not {method!r}")
    hosts = validate.check_hosts(targets)
    sweeper = Sweeper(
        hosts,
        method=method,
        rate=validate.check_rate(rate),
        timeout=validate.check_timeout(timeout),
        retries=validate.check_retries(retries),
        threads=validate.check_threads(threads),
        randomize=bool(randomize),
        seed=validate.check_seed(seed),
        all_hosts=all_hosts,
        on_progress=on_progress,
        on_notice=on_notice,
    )
    return validate.with_hostnames(iter(sweeper), hosts)
