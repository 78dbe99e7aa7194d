"""Lab tests of the UDP scan (root; the scanner runs inside the lab's scanner namespace).

Closed ports need the hosts' ICMP port unreachables: the lab's hosts keep the default
net.ipv4.icmp_ratelimit (with icmp_ratemask=0, as the lab sets for every namespace), and the
keyed walk spreads the probes over the hosts; with the default retries the states are exact.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import pytest

from hilos.lab import Lab

if TYPE_CHECKING:
    from conftest import Unprivileged

pytestmark = pytest.mark.lab

SCAN = r"""
import json, sys, time
from hilos.services.udp import describe
from hilos.udp import UdpScanner
a = json.loads(sys.argv[1])
t = time.monotonic()
sc = UdpScanner(a["hosts"], a["ports"], namer=describe, privileged=a.get("privileged"),
                seed=a.get("seed"), shard=tuple(a["shard"]) if a.get("shard") else None)
out = {}
for r in sc.results():
    out[r.host] = {str(p.port): [p.state, p.reason, p.service, p.product, p.version, p.proto]
                   for p in r.ports}
print(json.dumps({"elapsed": time.monotonic() - t, "unprivileged": sc.unprivileged,
                  "hosts": out}))
"""

PORTS = [7, 53, 123, 137, 138, 161, 500, 631, 1434, 1900, 3456, 5000, 5300, 9200, 10000, 11211]
DEAD = "198.18.0.254"
UNREACHABLE = "198.18.254.7"


def _scan(lab: Lab, hosts: list[str], prefix: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
    run_kw = kw.pop("_run", {})
    args = json.dumps({"hosts": hosts, "ports": PORTS, **kw})
    python = prefix or (sys.executable,)
    proc = lab.run([*python, "-c", SCAN, args], timeout=180, **run_kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def _expected(lab: Lab, hosts: list[str]) -> dict[str, dict[str, list[Any]]]:
    live = {h["addr"]: h for h in lab.truth["hosts"]}
    want: dict[str, dict[str, list[Any]]] = {}
    for host in hosts:
        h = live.get(host)
        ports = {}
        for p in PORTS:
            if h is None:
                state = (
                    ["filtered", "host-unreach"]
                    if host == UNREACHABLE
                    else ["open|filtered", "no-response"]
                )
            elif str(p) in h["udp"]:
                u = h["udp"][str(p)]
                state = [u["state"], u["reason"]]
            else:
                state = ["closed", "port-unreach"]
            ports[str(p)] = state
        want[host] = ports
    return want


def _states(got: dict[str, Any]) -> dict[str, dict[str, list[Any]]]:
    return {h: {p: v[:2] for p, v in ports.items()} for h, ports in got["hosts"].items()}


def _check_services(lab: Lab, got: dict[str, Any]) -> int:
    named = 0
    for h in lab.truth["hosts"]:
        for port, u in h["udp"].items():
            if u["state"] != "open" or int(port) not in PORTS:
                continue
            state, _r, service, product, version, proto = got["hosts"][h["addr"]][port]
            assert (state, proto) == ("open", "udp")
            assert (service, product, version) == (u["service"], u["product"], u["version"]), (
                h["addr"],
                port,
            )
            named += 1
    return named


@pytest.fixture(scope="module")
def udp_lab() -> Any:
    from hilos.lab import Lab as LabCls
    from hilos.lab import teardown

    name = "hlsudp"
    teardown(name)
    the_lab = LabCls.up(name, dense=8, sparse=0, ipv6=2)
    try:
        yield the_lab
    finally:
        the_lab.down()


def _targets(lab: Lab) -> list[str]:
    return [h["addr"] for h in lab.truth["hosts"]] + [DEAD, UNREACHABLE]


def test_states_exact_per_kind_v4_and_v6_and_services_named(udp_lab: Lab) -> None:
    hosts = _targets(udp_lab)
    got = _scan(udp_lab, hosts, privileged=True)
    assert not got["unprivileged"]
    assert _states(got) == _expected(udp_lab, hosts)
    kinds = {s[0] for ports in _states(got).values() for s in ports.values()}
    assert kinds == {"open", "closed", "filtered", "open|filtered"}
    assert any(":" in h and "open" in str(v) for h, v in _states(got).items())
    # Every open UDP service of the lab among PORTS, the unusual ports of .4 included.
    assert _check_services(udp_lab, got) >= 11


def test_shards_together_are_the_whole_scan(udp_lab: Lab) -> None:
    hosts = _targets(udp_lab)[:4]
    parts = [_scan(udp_lab, hosts, seed=9, shard=[i, 2], privileged=True) for i in (1, 2)]
    merged: dict[str, dict[str, list[Any]]] = {}
    for part in parts:
        for h, ports in _states(part).items():
            assert not set(ports) & set(merged.get(h, {}))
            merged.setdefault(h, {}).update(ports)
    assert merged == _expected(udp_lab, hosts)


def test_unprivileged_path_gives_the_same_states(udp_lab: Lab, unprivileged: Unprivileged) -> None:
    hosts = [*[h["addr"] for h in udp_lab.truth["hosts"]][:5], DEAD, UNREACHABLE]
    got = _scan(
        udp_lab,
        hosts,
        prefix=unprivileged.argv,
        _run={"env": unprivileged.env, "cwd": unprivileged.cwd},
    )
    assert got["unprivileged"]
    assert _states(got) == _expected(udp_lab, hosts)
