"""Lab test: closed UDP ports behind Linux's default ICMP rate limit still come out closed.

The lab exempts ICMP from the per-destination rate limit (icmp_ratemask=0 in every namespace,
hilos.lab.build); here the hosts' namespace gets the kernel default back (0x1818: destination
unreachable limited to one a second after a burst of about six). Every host of the lab shares
that namespace, hence one budget of errors toward the scanner: a closed-port state needs its
ICMP error, so the scan takes about one second per closed port beyond the burst.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.lab

SCAN = r"""
import json, sys, time
from hilos.udp import UdpScanner
from hilos.udp import drain
passes = []
orig = drain.drain_rate_limited
def counted(*a):
    n = orig(*a)
    passes.append(n)
    return n
import hilos.udp.scanner as s, hilos.udp.unpriv as u
s.drain_rate_limited = u.drain_rate_limited = counted
t = time.monotonic()
(h,) = list(UdpScanner(["198.18.0.3"], json.loads(sys.argv[1]),
                       privileged=json.loads(sys.argv[2])).results())
print(json.dumps({"states": {p.port: p.state for p in h.ports}, "passes": passes,
                  "elapsed": time.monotonic() - t}))
"""


@pytest.mark.parametrize("privileged", [True, False], ids=["raw", "unprivileged"])
def test_closed_ports_behind_the_default_icmp_rate_limit(make_lab: Any, privileged: bool) -> None:
    lab = make_lab(dense=4, sparse=0, ipv6=0)
    subprocess.run(
        ["ip", "netns", "exec", lab.hosts_ns, "sysctl", "-q", "-w",
         "net.ipv4.icmp_ratemask=6168", "net.ipv4.icmp_ratelimit=1000"],
        check=True,
    )  # fmt: skip
    ports = list(range(40001, 40017))  # 16 closed ports of 198.18.0.3
    proc = lab.run(
        [sys.executable, "-c", SCAN, json.dumps(ports), json.dumps(privileged)], timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["states"] == {str(p): "closed" for p in ports}
    # The regular passes could not get them all: the slow passes did.
    assert got["passes"] and got["passes"][0] >= 3
    assert got["elapsed"] >= 3
