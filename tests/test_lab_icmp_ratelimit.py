"""The lab's per-host ICMP rate limit (`hilos lab up --icmp-ratelimit`): each host answers a burst
of probes to its closed UDP ports with about six port unreachables, the rest one a second later,
and each host has a budget of its own, as separate Linux machines would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from hilos.lab.build import ICMP_BURST, _nft_icmp_ratelimit

BURST = r"""
import json, select, socket, sys, time
a = json.loads(sys.argv[1])
fam = socket.AF_INET6 if ":" in a["host"] else socket.AF_INET
icmp = socket.socket(fam, socket.SOCK_RAW,
                     socket.IPPROTO_ICMPV6 if fam == socket.AF_INET6 else socket.IPPROTO_ICMP)
udp = socket.socket(fam, socket.SOCK_DGRAM)

def burst(ports):
    for p in ports:
        udp.sendto(b"", (a["host"], p))
    got, end = 0, time.monotonic() + 0.4
    while (left := end - time.monotonic()) > 0:
        if select.select([icmp], [], [], left)[0]:
            d = icmp.recv(2048)
            t, c = (d[0], d[1]) if fam == socket.AF_INET6 else (d[20], d[21])
            got += (t, c) == ((1, 4) if fam == socket.AF_INET6 else (3, 3))
    return got

out = [burst(a["ports"][:20])]
time.sleep(a["sleep"])
out.append(burst(a["ports"][20:]))
print(json.dumps(out))
"""


def _closed(truth: dict[str, Any], addr: str) -> list[int]:
    (host,) = [h for h in truth["hosts"] if h["addr"] == addr]
    return [p for p in range(40001, 40100) if str(p) not in host["udp"]][:40]


def _burst(lab: Any, addr: str, sleep: float) -> list[int]:
    arg = {"host": addr, "ports": _closed(lab.truth, addr), "sleep": sleep}
    proc = lab.run([sys.executable, "-c", BURST, json.dumps(arg)], timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got: list[int] = json.loads(proc.stdout)
    return got


def test_the_rule_limits_destination_unreachables_per_host_and_peer() -> None:
    text = _nft_icmp_ratelimit()
    assert "icmp type destination-unreachable update @peers4 { ip saddr . ip daddr" in text
    assert "icmpv6 type destination-unreachable update @peers6 { ip6 saddr . ip6 daddr" in text
    assert f"limit rate over 1/second burst {ICMP_BURST} packets }} drop" in text


@pytest.mark.lab
def test_a_burst_gets_six_port_unreachables_per_host_then_one_a_second(make_lab: Any) -> None:
    lab = make_lab(dense=4, sparse=0, ipv6=1, icmp_ratelimit=True)
    assert lab.truth["icmp_ratelimit"] == {"per_second": 1, "burst": ICMP_BURST}
    v4 = [h["addr"] for h in lab.truth["hosts"] if h["family"] == 4]
    v6 = [h["addr"] for h in lab.truth["hosts"] if h["family"] == 6]
    # 20 probes at once: the burst answers, the rest is dropped; 2.5 s later about 2.5 more.
    first, later = _burst(lab, v4[0], 2.5)
    assert first == ICMP_BURST
    assert 2 <= later <= 3
    # Another host has a budget of its own (one namespace, yet not one kernel budget).
    assert _burst(lab, v4[1], 0.0)[0] == ICMP_BURST
    assert _burst(lab, v6[0], 0.0)[0] == ICMP_BURST
    status = subprocess.run(
        [sys.executable, "-m", "hilos", "lab", "status", "--name", lab.name],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "ICMP errors rate-limited per host" in status.stdout, status.stdout


@pytest.mark.lab
def test_without_the_option_every_probe_gets_its_port_unreachable(make_lab: Any) -> None:
    lab = make_lab(dense=2, sparse=0, ipv6=0)
    assert lab.truth["icmp_ratelimit"] is None
    addr = next(h["addr"] for h in lab.truth["hosts"] if h["family"] == 4)
    assert _burst(lab, addr, 0.0)[0] == 20


def test_a_host_is_drained_only_when_its_answers_came_at_a_limiters_pace() -> None:
    from hilos.udp.drain import looks_rate_limited

    assert looks_rate_limited(closed=6, silent=4, elapsed=0.2)  # the burst, then silence
    assert looks_rate_limited(closed=40, silent=54, elapsed=35.0)  # 1/s since
    assert not looks_rate_limited(closed=97, silent=3, elapsed=0.3)  # too fast: dropped ports
    assert not looks_rate_limited(closed=2, silent=3, elapsed=0.2)  # the burst covered all
    assert not looks_rate_limited(closed=0, silent=20, elapsed=0.2)  # nothing closed seen


SCAN = r"""
import json, sys, time
from hilos.udp import UdpScanner
a = json.loads(sys.argv[1])
t = time.monotonic()
(h,) = list(UdpScanner([a["host"]], a["ports"], privileged=a["privileged"]).results())
print(json.dumps({"states": [p.state for p in h.ports], "elapsed": time.monotonic() - t}))
"""


@pytest.mark.lab
@pytest.mark.parametrize("privileged", [True, False], ids=["raw", "unprivileged"])
def test_ten_closed_ports_behind_a_hosts_rate_limit_all_come_out_closed(
    make_lab: Any, privileged: bool
) -> None:
    """6 answer at once, the other 4 one a second later: still closed, not open|filtered."""
    lab = make_lab(dense=2, sparse=0, ipv6=0, icmp_ratelimit=True)
    addr = next(h["addr"] for h in lab.truth["hosts"] if h["family"] == 4)
    arg = {"host": addr, "ports": _closed(lab.truth, addr)[:10], "privileged": privileged}
    proc = lab.run([sys.executable, "-c", SCAN, json.dumps(arg)], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    assert got["states"] == ["closed"] * 10
    assert 3.0 <= got["elapsed"] < 15
