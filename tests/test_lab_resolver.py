"""Lab names from inside the lab (hilos.lab.resolver, hilos.lab.dns): the scanner's resolver."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hilos import lab as labmod
from hilos.lab import Lab

# --- The lab's DNS (hilos.lab.dns) seen from the scanner namespace --------------------------------

_RESOLVE = """
import json, socket, sys, time
out = {}
for name in sys.argv[1:]:
    t0 = time.monotonic()
    try:
        addrs = sorted({a[4][0] for a in socket.getaddrinfo(name, None)})
    except socket.gaierror as exc:
        addrs = "error %d" % exc.errno
    out[name] = [addrs, time.monotonic() - t0]
print(json.dumps(out))
"""


@pytest.mark.lab
def test_lab_names_resolve_in_the_scanner_namespace(lab: Lab) -> None:
    names = ["h1.lab.test", "H2.LAB.TEST", "v6.lab.test", "dual.lab.test", "multi.lab.test",
             "nosuch.lab.test", "example.com", "localhost"]  # fmt: skip
    proc = lab.run([sys.executable, "-c", _RESOLVE, *names], timeout=60)
    assert proc.returncode == 0, proc.stderr
    got = {name: addrs for name, (addrs, _t) in json.loads(proc.stdout).items()}
    assert got["h1.lab.test"] == ["198.18.0.1"]
    assert got["H2.LAB.TEST"] == ["198.18.0.2"]
    assert got["v6.lab.test"] == ["fd18:0:0:100::1"]
    assert got["dual.lab.test"] == ["198.18.0.1", "fd18:0:0:100::1"]
    assert got["multi.lab.test"] == ["198.18.0.1", "198.18.0.2"]
    assert got["nosuch.lab.test"] == f"error {socket.EAI_NONAME}"  # NXDOMAIN
    assert isinstance(got["example.com"], str)  # REFUSED: the lab never forwards
    assert "127.0.0.1" in got["localhost"] or "::1" in got["localhost"]  # /etc/hosts first
    times = {name: t for name, (_a, t) in json.loads(proc.stdout).items()}
    assert max(times.values()) < 3, times  # answers (even refusals) come at once
    rev = lab.run([sys.executable, "-c", "import socket; print(socket.gethostbyaddr("
                   "'198.18.0.3')[0])"], timeout=30)  # fmt: skip
    assert rev.stdout.strip() == "h3.lab.test", rev.stderr


@pytest.mark.lab
def test_scanner_namespace_asks_only_the_lab_dns(lab: Lab) -> None:
    resolv = lab.run(["cat", "/etc/resolv.conf"]).stdout
    servers = re.findall(r"(?m)^nameserver\s+(\S+)", resolv)
    assert servers == lab.truth["dns"]["servers"] == ["198.19.0.1", "fd18:ff::1"]
    nss = lab.run(["cat", "/etc/nsswitch.conf"]).stdout
    assert re.findall(r"(?m)^hosts:.*$", nss) == ["hosts: files dns"]
    # The root namespace keeps its own resolver configuration.
    assert "hilos lab" not in Path("/etc/resolv.conf").read_text()
    st = Lab.status(lab.name)
    assert st.up, st.problems


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_cli_up_names_the_lab_names_and_they_work() -> None:
    name = f"hf{os.getpid() % 100000}x99"  # a factory-style name: stale copies get cleaned up
    hilos = [sys.executable, "-m", "hilos", "lab"]
    labmod.teardown(name)
    try:
        argv = [*hilos, "up", "--name", name, "--dense", "5", "--sparse", "0", "--ipv6", "1"]
        up = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert up.returncode == 0, up.stderr
        names = next(line for line in up.stdout.splitlines() if line.startswith("names:"))
        assert "h1.lab.test" in names and "v6.lab.test" in names and "198.19.0.1" in names
        argv = [*hilos, "run", "--name", name, "--", "ping", "-c1", "-W2", "h1.lab.test"]
        ping = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert ping.returncode == 0 and "198.18.0.1" in ping.stdout, ping.stdout + ping.stderr
    finally:
        labmod.teardown(name)
    assert not Path("/etc/netns", f"{name}-scan").exists()
