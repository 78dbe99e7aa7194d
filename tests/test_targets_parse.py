"""Tests of hilos.targets.parse: host names, -iL and exclusion files, exclusions, and the
CLI's exit 2 for bad target input. Only localhost and fake resolvers: no real name lookups.
"""

from __future__ import annotations

import io
import ipaddress
import sys
import tracemalloc
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from hilos.errors import TargetError
from hilos.targets import (
    MAX_LINE,
    Resolver,
    parse_targets,
)
from hilos.targets import parse as parse_mod


def addrs(*texts: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(t) for t in texts]


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
    def resolve(name: str) -> list[str]:
        if name not in table:
            raise OSError(-2, "Name or service not known")
        return table[name]

    return resolve


def test_names_are_resolved_with_the_resolver() -> None:
    resolve = fake_resolver({"lab.test": ["198.18.0.7", "fd18::7"]})
    space = parse_targets(["lab.test"], resolver=resolve)
    assert list(space) == addrs("198.18.0.7", "fd18::7")
    assert space.names[IPv4Address("198.18.0.7")] == "lab.test"


def test_unresolvable_name_is_a_warning() -> None:
    warnings: list[str] = []
    space = parse_targets(
        ["nosuch.test", "127.0.0.1"], on_warning=warnings.append, resolver=fake_resolver({})
    )
    assert list(space) == addrs("127.0.0.1")
    assert len(warnings) == 1 and "nosuch.test" in warnings[0]
    assert space.warnings == tuple(warnings)


def test_unresolvable_name_without_callback_is_kept_in_warnings() -> None:
    space = parse_targets(["nosuch.test"], resolver=fake_resolver({}))
    assert not space and len(space.warnings) == 1


def test_localhost_resolves_with_getaddrinfo() -> None:
    space = parse_targets(["localhost"])
    assert space.size >= 1
    assert set(space) <= set(addrs("127.0.0.1", "::1"))


def test_name_with_prefix() -> None:
    space = parse_targets(["lab.test/30"], resolver=fake_resolver({"lab.test": ["198.18.0.5"]}))
    assert len(space) == 4 and space[0] == IPv4Address("198.18.0.4")


def test_name_with_prefix_prefers_the_matching_family() -> None:
    resolve = fake_resolver({"dual.test": ["198.18.0.5", "fd18::5"], "six.test": ["fd18::5"]})
    assert list(parse_targets(["dual.test/31"], resolver=resolve)) == addrs(
        "198.18.0.4", "198.18.0.5"
    )
    assert parse_targets(["dual.test/120"], resolver=resolve).size_v6 == 256
    assert parse_targets(["six.test/120"], resolver=resolve).size == 256
    assert parse_targets(["six.test/24"], resolver=resolve).size == 2**104
    with pytest.raises(TargetError, match="prefix length"):
        parse_targets(["dual.test/129"], resolver=resolve)


def test_names_in_exclusions() -> None:
    resolve = fake_resolver({"gw.test": ["198.18.0.1"]})
    space = parse_targets(["198.18.0.0/30"], exclude=["gw.test"], resolver=resolve)
    assert IPv4Address("198.18.0.1") not in space and len(space) == 3


def test_input_file(tmp_path: Path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("# lab hosts\n127.0.0.1 127.0.0.2   # two\n\n  ::1\n127.0.0.1,127.0.0.5\n")
    space = parse_targets([], input_file=str(f))
    assert list(space) == addrs("127.0.0.1", "127.0.0.2", "127.0.0.5", "::1")


def test_input_file_with_positional_targets(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text("127.0.0.2\n")
    assert list(parse_targets(["127.0.0.1"], input_file=str(f))) == addrs("127.0.0.1", "127.0.0.2")


def test_input_file_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("127.0.0.9\n::1 # loopback\n"))
    assert list(parse_targets([], input_file="-")) == addrs("127.0.0.9", "::1")


def test_input_file_error_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("127.0.0.1\n\n198.18.0.300\n")
    with pytest.raises(
        TargetError, match=r"invalid target '198\.18\.0\.300' \(.*bad\.txt line 3\)"
    ):
        parse_targets([], input_file=str(f))


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="cannot read target file"):
        parse_targets([], input_file=str(tmp_path / "nope"))
    with pytest.raises(TargetError, match="cannot read exclusion file"):
        parse_targets(["127.0.0.1"], exclude_file=str(tmp_path))


def test_exclude_file(tmp_path: Path) -> None:
    f = tmp_path / "ex"
    f.write_text("198.18.0.0-99 # first hundred\n198.18.0.200/29\n")
    space = parse_targets(["198.18.0.0/24"], exclude_file=str(f))
    assert len(space) == 256 - 100 - 8
    assert IPv4Address("198.18.0.100") in space
    assert IPv4Address("198.18.0.203") not in space


def test_exclude_comma_lists_of_any_form() -> None:
    space = parse_targets(
        ["198.18.0.0/24", "fd18::/120"],
        exclude=["198.18.0.0,198.18.0.255", "198.18.0.10-19,fd18::/121", "198.18.0,3,5.1"],
    )
    assert space.size_v4 == 256 - 2 - 10 - 1
    assert space.size_v6 == 256 - 128
    assert IPv4Address("198.18.0.1") not in space
    assert IPv4Address("198.18.0.2") in space
    assert IPv6Address("fd18::80") in space and IPv6Address("fd18::7f") not in space


def test_everything_excluded_is_an_empty_space() -> None:
    space = parse_targets(["127.0.0.0/30"], exclude=["127.0.0.0/24"])
    assert space.size == 0 and len(space) == 0 and not space
    assert list(space) == [] and list(space.iter_permuted(3)) == []
    with pytest.raises(IndexError):
        space[0]


def test_no_targets_is_empty() -> None:
    assert parse_targets([]).size == 0
    assert parse_targets([""]).size == 0


def test_names_resolving_to_mapped_addresses_keep_the_name() -> None:
    space = parse_targets(["m.test"], resolver=fake_resolver({"m.test": ["::ffff:127.0.0.3"]}))
    assert list(space) == addrs("127.0.0.3")
    assert space.hostname("127.0.0.3") == "m.test"


def test_unresolvable_exclusion_is_an_error_not_a_warning() -> None:
    from hilos.errors import ResolveError

    warnings: list[str] = []
    with pytest.raises(ResolveError, match=r"nosuch\.test"):
        parse_targets(
            ["127.0.0.1"],
            exclude=["nosuch.test"],
            on_warning=warnings.append,
            resolver=fake_resolver({}),
        )
    with pytest.raises(ResolveError, match="resolved to no address"):
        parse_targets(
            ["127.0.0.1"], exclude=["empty.test"], resolver=fake_resolver({"empty.test": []})
        )
    assert warnings == []


def test_unresolvable_exclusion_in_a_file_names_the_line(tmp_path: Path) -> None:
    from hilos.errors import ResolveError

    f = tmp_path / "ex.txt"
    f.write_text("127.0.0.2\nnosuch.test\n")
    with pytest.raises(ResolveError, match=r"ex\.txt line 2"):
        parse_targets(["127.0.0.1"], exclude_file=str(f), resolver=fake_resolver({}))


def test_strict_makes_an_unresolvable_target_an_error() -> None:
    from hilos.errors import ResolveError

    with pytest.raises(ResolveError, match=r"nosuch\.test"):
        parse_targets(["nosuch.test"], strict=True, resolver=fake_resolver({}))


def test_target_file_of_zeros_is_refused_without_reading_it_all() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TargetError, match="NUL byte"):
            parse_targets([], input_file="/dev/zero")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_target_file_with_an_overlong_line_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "long.txt"
    f.write_text("127.0.0.1\n" + "1" * (MAX_LINE + 10) + "\n")
    with pytest.raises(TargetError, match=r"line 2 is longer than 4096 bytes"):
        parse_targets([], input_file=str(f))
    ok = tmp_path / "ok.txt"
    ok.write_text(" " * (MAX_LINE - 10) + "127.0.0.1\n127.0.0.2")
    assert parse_targets([], input_file=str(ok)).size == 2


def test_binary_exclusion_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "bin"
    f.write_bytes(b"127.0.0.1\n\x7fELF\x00\x01")
    with pytest.raises(TargetError, match=r"exclusion file .* line 2 holds a NUL byte"):
        parse_targets(["127.0.0.1"], exclude_file=str(f))


def test_stdin_target_file_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    class _Stdin(io.StringIO):
        buffer = io.BytesIO(b"127.0.0.1\n" + b"9" * 10_000)

    monkeypatch.setattr(sys, "stdin", _Stdin())
    with pytest.raises(TargetError, match=r"stdin.* line 2 is longer"):
        parse_targets([], input_file="-")


def test_cli_target_file_of_zeros_is_exit_2_one_line() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "hilos", "sweep", "-iL", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("hilos: error: ") and out.stderr.count("\n") == 1
    assert "NUL byte" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_cli_unresolvable_exclusion_is_exit_2_even_with_q(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], quiet: list[str]
) -> None:
    from hilos import cli

    monkeypatch.setattr(parse_mod, "resolve_name", fake_resolver({}))
    rc = cli.main(["sweep", "127.0.0.1", "--exclude", "nosuch.test", *quiet])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("hilos: error: ") and "nosuch.test" in err


def test_cli_sweep_of_a_v4_mapped_address_finds_the_v4_host() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "hilos", "sweep", "::ffff:127.0.0.1", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["127.0.0.1", "up"]
