"""The lab's plan and truth file (hilos.lab.plan, hilos.lab.truth): pure, no root needed."""

from __future__ import annotations

import ipaddress
import json

import pytest

from hilos.errors import LabError
from hilos.lab import DEAD_HOST, LAB4, LAB6, UNREACHABLE, plan_hosts
from hilos.lab.truth import build_truth

DENSE_NET = ipaddress.ip_network("198.18.0.0/24")
UNREACH_NET = ipaddress.ip_network(UNREACHABLE)
COMMON_PORTS = {21, 22, 25, 80, 110, 143, 443, 3306, 5432, 6379, 8080, 9200}


# --- The plan (no root needed) ------------------------------------------------------------------


def test_plan_is_reproducible_from_the_seed() -> None:
    assert plan_hosts(seed=7) == plan_hosts(seed=7)
    assert plan_hosts(seed=7) != plan_hosts(seed=8)


def test_plan_counts_and_ranges() -> None:
    plan = plan_hosts(seed=3, dense=60, sparse=500, ipv6=6)
    addrs = [ipaddress.ip_address(h.addr) for h in plan]
    assert len(set(addrs)) == len(addrs) == 566
    v4 = [a for a in addrs if a.version == 4]
    v6 = [a for a in addrs if a.version == 6]
    assert sum(a in DENSE_NET for a in v4) == 60
    assert len(v4) - 60 == 500
    assert len(v6) == 6
    assert all(a in ipaddress.ip_network(LAB4) for a in v4)
    assert all(a in ipaddress.ip_network(LAB6) for a in v6)
    assert not any(a in UNREACH_NET for a in v4)
    assert ipaddress.ip_address(DEAD_HOST) not in v4
    assert not any(int(a) & 0xFF in (0, 255) for a in v4)


def test_plan_counts_are_options() -> None:
    plan = plan_hosts(seed=1, dense=10, sparse=20, ipv6=0)
    assert sum(h.family == 4 for h in plan) == 30
    assert not any(h.family == 6 for h in plan)
    with pytest.raises(LabError):
        plan_hosts(dense=251)


def test_plan_fixed_hosts_do_not_depend_on_the_seed() -> None:
    for seed in (1, 2, 99):
        hosts = {h.addr: h for h in plan_hosts(seed=seed)}
        one, two, three, four = (hosts[f"198.18.0.{i}"] for i in (1, 2, 3, 4))
        assert one.icmp and set(one.open_ports) >= COMMON_PORTS
        assert {2222, 7777, 8081, 8443, 10443} <= set(one.open_ports)
        assert len(one.filtered_ports) >= 2
        assert not two.icmp and dict(two.open_ports) == {22: "ssh", 80: "http"}
        assert sorted(three.open_ports.values()) == ["echo", "escape", "flood", "silent", "ssh"]
        assert three.open_ports[27017] == "echo"  # mongodb's port: issue 9's "mongodb" echo
        assert not set(four.open_ports) & COMMON_PORTS and len(four.filtered_ports) >= 2
        assert hosts["fd18:0:0:100::1"].icmp


def test_plan_shape_is_realistic() -> None:
    plan = plan_hosts(seed=1)
    random_hosts = [h for h in plan if h.addr not in {"198.18.0.1", "198.18.0.2", "198.18.0.3",
                                                      "198.18.0.4", "fd18:0:0:100::1"}]  # fmt: skip
    silent = [h for h in random_hosts if not h.icmp]
    assert 0.05 < len(silent) / len(random_hosts) < 0.16
    assert all(h.open_ports for h in silent)  # ICMP-silent hosts are findable by TCP
    assert all(len(h.open_ports) <= 3 for h in random_hosts)
    assert all(set(h.open_ports) <= COMMON_PORTS for h in random_hosts)
    assert sum(not h.open_ports for h in random_hosts) > 50  # some hosts have no open port
    unusual = [p for h in plan if h.family == 4 for p in h.open_ports if p not in COMMON_PORTS]
    assert len(unusual) >= 12
    assert sum(len(h.filtered_ports) >= 2 for h in plan) >= 5
    assert all(not set(h.filtered_ports) & set(h.open_ports) for h in plan)


def test_plan_kinds_are_service_kinds() -> None:
    from hilos.lab import services

    kinds = {k for h in plan_hosts() for k in h.open_ports.values()}
    for kind in kinds:
        assert services.describe(kind)  # raises on an unknown kind


def test_truth_file_format() -> None:
    plan = plan_hosts(seed=5, dense=6, sparse=3, ipv6=2)
    truth = build_truth("t", plan, 40, 1.5, 5)
    assert truth["ranges"] == {"lab4": LAB4, "dense": "198.18.0.0/24",
                               "unreachable": UNREACHABLE, "lab6": LAB6}  # fmt: skip
    assert truth["scanner_ns"] == "t-scan" and truth["rtt_ms"] == 40.0
    one = next(h for h in truth["hosts"] if h["addr"] == "198.18.0.1")
    assert one["family"] == 4 and one["icmp"] is True
    assert one["ports"]["22"]["state"] == "open" and one["ports"]["22"]["service"] == "ssh"
    assert one["ports"]["443"]["tls"] is True
    assert one["ports"]["445"] == {"state": "filtered", "service": None, "product": None,
                                   "version": None, "tls": False, "banner": None}  # fmt: skip
    three = next(h for h in truth["hosts"] if h["addr"] == "198.18.0.3")
    assert three["ports"]["27017"]["service"] == "echo"
    assert truth["dns"]["domain"] == "lab.test"
    assert truth["dns"]["servers"] == ["198.19.0.1", "fd18:ff::1"]
    names = truth["dns"]["names"]
    assert names["h1.lab.test"] == {"A": ["198.18.0.1"]}
    assert names["v6.lab.test"] == {"AAAA": ["fd18:0:0:100::1"]}
    assert names["dual.lab.test"] == {"A": ["198.18.0.1"], "AAAA": ["fd18:0:0:100::1"]}
    assert names["dead.lab.test"] == {"A": [DEAD_HOST]}
    assert truth["dns"]["ptr"]["198.18.0.4"] == "h4.lab.test"
    assert truth["dns"]["ptr"]["fd18:0:0:100::1"] == "v6.lab.test"
    json.dumps(truth)
