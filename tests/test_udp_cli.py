"""`hilos scan -sU` / `--type syn,udp` / `-p U:..,T:..`: UDP ports in every output format."""

from __future__ import annotations

import json
import os
import socket
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from hilos import cli
from hilos.errors import PortSpecError
from hilos.targets.udp_ports import split_protocols, top_udp_ports, udp_service_name


def test_port_specs_by_protocol() -> None:
    assert split_protocols("U:53,161,T:22,80") == ((22, 80), (53, 161))
    assert split_protocols("T:22,U:53-54") == ((22,), (53, 54))
    assert split_protocols("80") == ((80,), (80,))
    with pytest.raises(PortSpecError):
        split_protocols("S:22")
    with pytest.raises(PortSpecError):
        split_protocols("U:99999")


def test_udp_top_ports() -> None:
    top = top_udp_ports(100)
    assert len(set(top)) == 100 and top[:4] == (631, 161, 137, 123)
    assert top_udp_ports(1200)[:100] == top and len(set(top_udp_ports(1200))) == 1200
    assert udp_service_name(53) == "domain" and udp_service_name(161) == "snmp"


def test_bad_type_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["scan", "--type", "udp,xmas", "127.0.0.1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hilos: error: --type udp,xmas") and err.count("\n") == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the SYN half needs root")
def test_syn_and_udp_together_in_every_format(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    base = tmp_path / "out"
    code = cli.main(
        ["scan", "-sS", "-sU", "-p", f"T:1,U:{free},161", "127.0.0.1", "-oA", str(base), "-q",
         "--all"]
    )  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in Path(f"{base}.jsonl").read_text().splitlines()]
    ports = {(p["port"], p["proto"], p["state"]) for r in rows for p in r.get("ports", [])}
    assert ports == {(1, "tcp", "closed"), (free, "udp", "closed"), (161, "udp", "closed")}
    root = ET.parse(f"{base}.xml").getroot()
    assert [i.get("protocol") for i in root.iter("scaninfo")] == ["tcp", "udp"]
    assert "161/closed/udp" in Path(f"{base}.gnmap").read_text()
    assert (
        "closed udp ports" in Path(f"{base}.nmap").read_text()
        or "161/udp" in Path(f"{base}.nmap").read_text()
    )


@pytest.mark.parametrize(
    ("argv", "tcp", "udp"),
    [
        (["-sU"], (), (53, 161)),
        (["--type", "udp"], (), (53, 161)),
        (["--type", "syn,udp"], (22,), (53, 161)),
        (["-sS", "-sU"], (22,), (53, 161)),
        (["-sT"], (22, 53, 161), ()),
    ],
)
def test_types_and_port_forms(argv: list[str], tcp: tuple[int, ...], udp: tuple[int, ...]) -> None:
    from hilos.cli import scan as cli_scan

    parser = cli.build_parser()
    spec = "T:22,U:53,161" if udp else "22,53,161"
    args = parser.parse_args(["scan", *argv, "-p", spec, "127.0.0.1"])
    kind, wants_udp = cli_scan._types(args)
    assert cli_scan._ports(args, kind, wants_udp) == (tcp, udp)


def test_top_ports_uses_the_udp_ranking() -> None:
    import argparse

    from hilos.cli import scan as cli_scan

    args = argparse.Namespace(ports=None, top_ports=10)
    assert cli_scan._ports(args, "", True) == ((), top_udp_ports(10))
    both = cli_scan._ports(args, "syn", True)
    assert both[1] == top_udp_ports(10) and len(both[0]) == 10 and 631 not in both[0]


def test_unprivileged_udp_scan_says_so_once(unprivileged: Any) -> None:
    proc = unprivileged.run(["-m", "hilos", "scan", "-sU", "-p", "9,53", "127.0.0.1", "--all"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("UDP scan without raw sockets") == 1
    assert "9/udp  closed discard" in proc.stdout
