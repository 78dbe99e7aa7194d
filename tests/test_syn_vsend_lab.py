"""The SYN scan through the batched sender in the lab: exact counts against the truth file."""

from __future__ import annotations

import collections
import ipaddress
import json
import sys

import pytest

from hilos.lab import Lab

SCAN = r"""
import collections, json, sys
import hilos.syn.vsend as vs
made = []
serving = vs.VectorSend.serving.__func__
def spy(cls, sender):
    v = serving(cls, sender)
    made.append(v is not None)
    return v
vs.VectorSend.serving = classmethod(spy)
from hilos.syn import syn_scan
from hilos.targets import parse_targets
a = json.loads(sys.argv[1])
states = collections.Counter()
opened = []
for r in syn_scan(parse_targets([a["cidr"]]), a["ports"], seed=5):
    for p in r.ports:
        states[p.state] += 1
        if p.state == "open":
            opened.append([r.host, p.port])
print(json.dumps({"batched": made, "states": states, "open": opened}))
"""


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_batched_syn_scan_of_a_lab_20_is_exact(lab: Lab) -> None:
    cidr = "198.18.0.0/20"
    net = ipaddress.ip_network(cidr)
    counts: collections.Counter[int] = collections.Counter()
    live = {h["addr"]: h for h in lab.truth["hosts"] if ipaddress.ip_address(h["addr"]) in net}
    for h in live.values():
        counts.update(int(p) for p, d in h["ports"].items() if d["state"] == "open")
    ports = sorted(p for p, _ in counts.most_common(16))
    want: collections.Counter[str] = collections.Counter()
    want_open = set()
    for addr, h in live.items():
        listed = {int(p): d["state"] for p, d in h["ports"].items() if int(p) in ports}
        want.update(listed.values())
        want["closed"] += len(ports) - len(listed)
        want_open |= {(addr, p) for p, s in listed.items() if s == "open"}
    want["filtered"] += (net.num_addresses - len(live)) * len(ports)
    proc = lab.run([sys.executable, "-c", SCAN, json.dumps({"cidr": cidr, "ports": ports})],
                   timeout=200)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    assert got["batched"] and all(got["batched"])  # every sender went through VectorSend
    assert got["states"] == dict(want)
    assert {(h, p) for h, p in got["open"]} == want_open
