"""Lab tests of the SYN scan (root; the scanner runs inside the lab's scanner namespace)."""

from __future__ import annotations

import ipaddress
import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

from hilos.lab import Lab

SCAN = r"""
import json, sys, time
from hilos.syn import syn_scan
a = json.loads(sys.argv[1])
hosts = a["hosts"]
if a.get("cidr"):
    import ipaddress
    hosts = [str(x) for x in ipaddress.ip_network(a["cidr"])]
ports = list(range(1, 65536)) if a["ports"] == "-" else a["ports"]
t = time.monotonic()
out = []
shard = tuple(a["shard"]) if a.get("shard") else None
for r in syn_scan(hosts, ports, seed=a.get("seed"), shard=shard, timeout=a.get("timeout")):
    other = [[p.port, p.state, p.reason] for p in r.ports if p.state != "closed"]
    bad = sum(1 for p in r.ports if p.state == "closed" and p.reason != "reset")
    closed = [p.port for p in r.ports if p.state == "closed"] if len(ports) <= 1024 else None
    out.append({"host": r.host, "status": r.status, "n": len(r.ports), "bad": bad,
                "other": other, "closed": closed})
print(json.dumps({"elapsed": time.monotonic() - t, "hosts": out}))
"""


def lab_scan(
    lab: Lab, timeout: float = 120, **args: Any
) -> tuple[float, dict[str, dict[str, Any]]]:
    proc = lab.run([sys.executable, "-c", SCAN, json.dumps(args)], timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    return data["elapsed"], {h["host"]: h for h in data["hosts"]}


def expected_other(truth: dict[str, Any], host: str, ports: list[int]) -> dict[int, str]:
    """Non-closed ports of `host` among `ports` per the truth file (dead: all filtered)."""
    live = {h["addr"]: h for h in truth["hosts"]}
    h = live.get(host)
    if h is None:
        return {p: "filtered" for p in ports}
    wanted = set(ports)
    return {int(p): v["state"] for p, v in h["ports"].items() if int(p) in wanted}


def check_exact(truth: dict[str, Any], got: dict[str, Any], host: str, ports: list[int]) -> None:
    r = got[host]
    assert r["n"] == len(ports) and r["bad"] == 0, host
    other = {p: s for p, s, _ in r["other"]}
    assert other == expected_other(truth, host, ports), host
    unreachable = ipaddress.ip_address(host) in ipaddress.ip_network("198.18.254.0/24")
    for port, state, reason in r["other"]:
        if state == "open":
            assert reason == "syn-ack"
        elif unreachable:
            # The router answers host-unreachable, rate-limited (icmp_ratelimit): the rest of
            # the probes go unanswered. Both are filtered.
            assert reason in ("host-unreach", "no-response")
        else:
            assert reason == "no-response", (host, port, reason)


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lab_full_range_exact(lab: Lab) -> None:
    hosts = ["198.18.0.1", "198.18.0.2", "198.18.0.4", "fd18:0:0:100::1", "198.18.0.254"]
    elapsed, got = lab_scan(lab, hosts=hosts, ports="-", seed=11)
    assert sorted(got) == sorted(hosts)
    allports = list(range(1, 65536))
    for h in hosts:
        check_exact(lab.truth, got, h, allports)
    assert got["198.18.0.254"]["status"] == "down" and got["198.18.0.1"]["status"] == "up"
    assert elapsed < 60


_FULL16: dict[str, Any] = {}


def _scan16(lab: Lab) -> dict[str, dict[str, Any]]:
    if "r" not in _FULL16:
        elapsed, got = lab_scan(lab, hosts=[], cidr="198.18.0.0/16", ports=[22, 80, 443], seed=3)
        _FULL16["r"], _FULL16["elapsed"] = got, elapsed
    return _FULL16["r"]  # type: ignore[no-any-return]


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lab_slash16_three_ports_exact(lab: Lab) -> None:
    got = _scan16(lab)
    assert len(got) == 65536
    for h in got:
        check_exact(lab.truth, got, h, [22, 80, 443])
    # Up: the host answered on some port, i.e. a live host with not all three ports filtered.
    answering = {
        h["addr"]
        for h in lab.truth["hosts"]
        if h["family"] == 4
        and any(h["ports"].get(str(p), {}).get("state") != "filtered" for p in (22, 80, 443))
    }
    assert "198.18.0.4" not in answering and "198.18.0.1" in answering
    assert {h for h, r in got.items() if r["status"] == "up"} == answering
    unreach = [r for h, r in got.items() if h.startswith("198.18.254.")]
    assert any(reason == "host-unreach" for r in unreach for _p, _s, reason in r["other"])
    assert _FULL16["elapsed"] < 60


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_lab_shards_disjoint_and_union_equal(lab: Lab) -> None:
    full = _scan16(lab)

    def flat(res: dict[str, dict[str, Any]]) -> dict[tuple[str, int], str]:
        out = {(h, p): "closed" for h, r in res.items() for p in r["closed"]}
        out.update({(h, p): s for h, r in res.items() for p, s, _ in r["other"]})
        assert len(out) == sum(r["n"] for r in res.values())
        return out

    whole = flat(full)
    assert len(whole) == 3 * 65536
    union: dict[tuple[str, int], str] = {}
    for i in range(1, 5):
        _el, got = lab_scan(
            lab, hosts=[], cidr="198.18.0.0/16", ports=[22, 80, 443], seed=3, shard=[i, 4]
        )
        part = flat(got)
        assert 0.2 < len(part) / len(whole) < 0.3
        assert not set(part) & set(union)  # disjoint
        union.update(part)
    assert union == whole  # together exactly the unsharded result


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_lab_rtt40_full_range_exact(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rtt_ms=40)
    hosts = ["198.18.0.1", "198.18.0.2"]
    elapsed, got = lab_scan(lab, hosts=hosts, ports="-", seed=2)
    for h in hosts:
        check_exact(lab.truth, got, h, list(range(1, 65536)))
    assert elapsed < 60
