"""The practice lab: a scanner, a router and hundreds of hosts in network namespaces (Linux, root).

Modules: plan (which hosts, which ports), netns (commands, namespaces, processes), build (links,
routes, nftables, daemons), core (Lab, LabStatus, teardown), delayer (the RTT), resolver and dns
(lab names), services (the fake servers, one module per protocol).

Three namespaces per lab, all named after it, nothing in the root namespace::

    <name>-scan   198.19.0.2/30, fd18:ff::2/64; routes only 198.18.0.0/16 and fd18:0:0:100::/64
        | veth
    <name>-net    the router: forwards, blackholes dead addresses, answers 198.18.254.0/24
        |         host-unreachable, drops --loss percent of forwarded packets (nftables numgen)
        | veth (rtt 0), or two TUN devices joined by a userspace delayer (rtt > 0: no sch_netem)
    <name>-hosts  every live address on its loopback; hilos.lab.services serves the open ports;
                  nftables drops ICMP echo to ICMP-silent hosts and TCP to filtered ports

Fixed hosts (always present, whatever the seed)::

    198.18.0.1   ICMP on; 12 common services (21 22 25 80 110 143 443 3306 5432 6379 8080
                 9200), 5 on unusual ports (2222 ssh, 7777 redis, 8081 http, 8443 https,
                 10443 tls); filtered 135 139 445 3389; every other port closed
    198.18.0.2   ICMP silent (echo dropped); open 22 ssh and 80 http; filtered 443
    198.18.0.3   the hostile host: 19 flood (10 MB), 23 terminal escapes, 4444 accepts and
                 never speaks, 27017 echo (MongoDB's port; sends the scanner's probe back);
                 also 22 ssh
    198.18.0.4   services on unusual ports only (1110 1143 2121 2525 3307 5433 6380 8000 8888
                 9201 9443 22222); filtered 22 80 443
    fd18:0:0:100::1   ICMPv6 on; open 22 80 443
    198.18.0.251-254  always dead (silent); 198.18.254.0/24 answers host-unreachable

Names: the router runs the lab's DNS server (hilos.lab.dns) on 198.19.0.1 and fd18:ff::1, and
``/etc/netns/<name>-scan/resolv.conf`` points the scanner namespace at it (``ip netns exec``
mounts it over /etc/resolv.conf; an nsswitch.conf there says "hosts: files dns", so nothing else
is asked). It answers for ``lab.test`` (RFC 6761) and refuses every other name::

    h1 h2 h3 h4.lab.test   198.18.0.1 .2 .3 .4 (and PTRs back)
    v6.lab.test            fd18:0:0:100::1
    dual.lab.test          198.18.0.1 and fd18:0:0:100::1
    multi.lab.test         198.18.0.1 and 198.18.0.2
    dead.lab.test          198.18.0.254

Example::

    lab = Lab.up("demo", rtt_ms=40)
    try:
        print(lab.run(["ping", "-c1", "198.18.0.1"]).stdout)
    finally:
        lab.down()
"""

from __future__ import annotations

from hilos.lab.core import Lab, LabStatus, teardown
from hilos.lab.netns import STATE_ROOT, LabNameError, read_state
from hilos.lab.plan import DEAD_HOST, LAB4, LAB6, UNREACHABLE, PlannedHost, plan_hosts

__all__ = [
    "DEAD_HOST",
    "LAB4",
    "LAB6",
    "STATE_ROOT",
    "UNREACHABLE",
    "Lab",
    "LabNameError",
    "LabStatus",
    "PlannedHost",
    "plan_hosts",
    "read_state",
    "teardown",
]
