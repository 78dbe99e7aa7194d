"""The library's public functions check their arguments as the CLI does (issue 9 item 13).

sweep(), connect_scan() and syn_scan() raise only HilosError subclasses, when they are called
(not at the first next()), for bad targets, ports and options; a lone str is one target. Probes
go to 127.0.0.1 only; names are resolved by a fake resolver or are `localhost`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hilos
from hilos import validate
from hilos.connect import connect_scan
from hilos.errors import (
    HilosError,
    InvalidArgument,
    PortSpecError,
    ResolveError,
    TargetError,
    UsageError,
)
from hilos.results import HostResult
from hilos.sweep import sweep
from hilos.syn import can_raw, syn_scan
from hilos.targets import TargetSpace
from hilos.targets import parse as targets_parse

needs_raw = pytest.mark.skipif(not can_raw(), reason="needs CAP_NET_RAW")


@pytest.fixture
def no_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every name but localhost fails, without asking the machine's resolver."""

    def resolve(name: str) -> list[str]:
        if name == "localhost":
            return ["127.0.0.1"]
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(targets_parse, "resolve_name", resolve)


# --------------------------------------------------------------------------- bad options

Call = Callable[..., Iterator[Any]]
_SCANS: list[tuple[str, Call, tuple[Any, ...]]] = [
    ("sweep", sweep, ("127.0.0.1",)),
    ("connect_scan", connect_scan, ("127.0.0.1", [1])),
    ("syn_scan", syn_scan, ("127.0.0.1", [1])),
]


@pytest.mark.parametrize(("name", "call", "args"), _SCANS, ids=[n for n, _, _ in _SCANS])
@pytest.mark.parametrize(
    "options",
    [
        {"timeout": -1},
        {"timeout": 0},
        {"timeout": float("nan")},
        {"timeout": "1"},
        {"rate": 0},
        {"rate": float("inf")},
        {"retries": -1},
        {"retries": 10**6},
        {"retries": 1.5},
        {"seed": "seven"},
    ],
    ids=repr,
)
def test_bad_options_raise_invalid_argument_at_call_time(
    name: str, call: Call, args: tuple[Any, ...], options: dict[str, Any]
) -> None:
    with pytest.raises(InvalidArgument) as info:
        call(*args, **options)  # no next(): the check is up front
    assert isinstance(info.value, UsageError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("threads", [0, -3, 10**6, True, 2.0])
@pytest.mark.parametrize("call", [sweep, connect_scan], ids=["sweep", "connect_scan"])
def test_bad_threads(call: Call, threads: object) -> None:
    args: tuple[Any, ...] = ("127.0.0.1",) if call is sweep else ("127.0.0.1", [1])
    with pytest.raises(HilosError, match="threads"):
        call(*args, threads=threads)


@pytest.mark.parametrize("ports", [[0], [65536], [-1], [True], ["22"], "", "0", None, b"22"])
@pytest.mark.parametrize("call", [connect_scan, syn_scan], ids=["connect", "syn"])
def test_bad_ports(call: Call, ports: object) -> None:
    with pytest.raises((InvalidArgument, PortSpecError)):
        call("127.0.0.1", ports)


def test_bad_shard_and_unknown_option() -> None:
    with pytest.raises(InvalidArgument, match="shard"):
        connect_scan("127.0.0.1", [1], shard=(3, 2))
    with pytest.raises(InvalidArgument, match="shard"):
        syn_scan("127.0.0.1", [1], shard=(0, 2))
    with pytest.raises(InvalidArgument, match=r"unknown option.*bogus"):
        connect_scan("127.0.0.1", [1], bogus=1)
    with pytest.raises(InvalidArgument, match="method"):
        sweep("127.0.0.1", method="arp")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- bad targets


@pytest.mark.parametrize(
    "hosts", [[None], [True], [-1], [2**128], b"127.0.0.1", 42.0, ["1.2.3.4.5"]]
)
@pytest.mark.parametrize(("name", "call", "args"), _SCANS, ids=[n for n, _, _ in _SCANS])
def test_bad_targets_raise_target_error(
    name: str, call: Call, args: tuple[Any, ...], hosts: object
) -> None:
    with pytest.raises(TargetError):
        call(hosts, *args[1:])


@pytest.mark.usefixtures("no_resolver")
@pytest.mark.parametrize(("name", "call", "args"), _SCANS, ids=[n for n, _, _ in _SCANS])
def test_unresolvable_name_is_a_resolve_error(name: str, call: Call, args: tuple[Any, ...]) -> None:
    with pytest.raises(ResolveError, match=r"nosuch\.test"):
        call(["127.0.0.1", "nosuch.test"], *args[1:])
    with pytest.raises(ResolveError, match=r"nosuch\.test"):
        call("nosuch.test", *args[1:])


@pytest.mark.usefixtures("no_resolver")
def test_unresolvable_name_in_a_generator_is_a_resolve_error_when_reached() -> None:
    hosts = iter(["127.0.0.1", "nosuch.test"])
    with pytest.raises(ResolveError):
        list(validate.check_hosts(hosts))


# --------------------------------------------------------------------------- accepted forms


def test_check_hosts_forms() -> None:
    one = validate.check_hosts("127.0.0.1")
    assert isinstance(one, TargetSpace) and list(one) == [ipaddress.ip_address("127.0.0.1")]
    block = validate.check_hosts("127.0.0.0/30")
    assert isinstance(block, TargetSpace) and block.size == 4
    # a list of single addresses keeps its order; ints and v4-mapped are addresses
    kept = validate.check_hosts(["127.0.0.3", 2130706433, "::ffff:127.0.0.2"])
    assert list(kept) == [ipaddress.ip_address(f"127.0.0.{i}") for i in (3, 1, 2)]
    # names and blocks among them: one exact lazy space, names kept for hostname=
    mixed = validate.check_hosts(["localhost", "fd18::/64"])  # parsed, never probed
    assert isinstance(mixed, TargetSpace) and mixed.size == 2**64 + 1
    assert mixed.hostname("127.0.0.1") == "localhost"
    assert validate.check_hosts(mixed) is mixed
    # a generator stays lazy: nothing is consumed until the engine pulls
    pulled: list[int] = []

    def gen() -> Iterator[str]:
        pulled.append(1)
        yield "127.0.0.1"

    lazy = validate.check_hosts(gen())
    assert pulled == []
    assert list(lazy) == [ipaddress.ip_address("127.0.0.1")] and pulled == [1]


def test_check_scan_hosts_lets_discovery_results_through() -> None:
    found = HostResult("127.0.0.1", "up", "echo-reply", 0.1)
    assert list(validate.check_scan_hosts(iter([found]))) == [found]
    assert list(validate.check_scan_hosts([found, "127.0.0.2"])) == [
        found,
        ipaddress.ip_address("127.0.0.2"),
    ]


def test_check_ports_forms() -> None:
    assert validate.check_ports("ssh,HTTP,1-2") == (1, 2, 22, 80)
    assert validate.check_ports(443) == (443,)
    assert validate.check_ports([80, 22, 80]) == (80, 22)


def test_sweep_of_a_lone_string_is_one_target() -> None:
    up = [r.host for r in sweep("127.0.0.1", method="tcp", timeout=1.0)]
    assert up == ["127.0.0.1"]


def test_sweep_accepts_int_addresses() -> None:
    up = [r.host for r in sweep([2130706433], method="tcp", timeout=1.0)]
    assert up == ["127.0.0.1"]


def test_connect_scan_of_a_lone_string_and_a_port_spec() -> None:
    results = list(connect_scan("127.0.0.1", "1", timeout=0.5))
    assert [(h.host, [p.port for p in h.ports]) for h in results] == [("127.0.0.1", [1])]


@needs_raw
def test_syn_scan_of_a_lone_string() -> None:
    results = list(syn_scan("127.0.0.1", [1], timeout=0.5))
    assert [h.host for h in results] == ["127.0.0.1"]


def test_everything_raised_is_exported() -> None:
    for cls in (InvalidArgument, ResolveError, TargetError, PortSpecError):
        assert getattr(hilos, cls.__name__) is cls


def test_one_retries_bound_everywhere() -> None:
    from hilos import connect
    from hilos.connect import scanner

    for module in (connect, scanner):
        assert getattr(module, "MAX_RETRIES", validate.MAX_RETRIES) == validate.MAX_RETRIES


def test_empty_ports() -> None:
    with pytest.raises(UsageError, match="no ports"):
        connect_scan("127.0.0.1", [])
    with pytest.raises(InvalidArgument, match="no ports"):
        validate.check_ports([])
    assert validate.check_ports([], allow_empty=True) == ()


def test_sweep_keeps_the_name_a_target_was_given_as() -> None:
    found = {r.host: r for r in sweep(["localhost", "127.0.0.2"], method="tcp", timeout=1.0)}
    assert found["127.0.0.1"].hostname == "localhost"
    assert found["127.0.0.2"].hostname is None


def test_connect_scan_keeps_the_name_a_target_was_given_as() -> None:
    (host,) = list(connect_scan("localhost", [1], timeout=0.5))
    assert (host.host, host.hostname) == ("127.0.0.1", "localhost")


@needs_raw
def test_syn_scan_keeps_the_name_a_target_was_given_as() -> None:
    (host,) = list(syn_scan(["localhost"], [1], timeout=0.5))
    assert (host.host, host.hostname) == ("127.0.0.1", "localhost")


def test_closing_a_named_sweep_closes_the_scan() -> None:
    results = validate.with_hostnames(iter([]), validate.check_hosts("127.0.0.1"))
    assert list(results) == []
    closed: list[bool] = []

    def inner() -> Iterator[HostResult]:
        try:
            yield HostResult("127.0.0.1", "up", "syn-ack", 0.1)
            yield HostResult("127.0.0.1", "up", "syn-ack", 0.1)
        finally:
            closed.append(True)

    named = validate.with_hostnames(inner(), validate.check_hosts(["localhost"]))
    assert next(named).hostname == "localhost"
    named.close()  # type: ignore[attr-defined]
    assert closed == [True]


def test_the_pool_names_load_on_first_use() -> None:
    import hilos
    from hilos import Pool, PoolStats, TaskResult, run_all
    from hilos.pool import Pool as P

    assert Pool is P and callable(run_all) and PoolStats and TaskResult
    with pytest.raises(AttributeError):
        _ = hilos.no_such_name  # type: ignore[attr-defined]
