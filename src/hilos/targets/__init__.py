"""Targets: specs parsed into a compact, lazy TargetSpace, the walk order over it, and port specs.

Accepted target forms (each may also appear in ``-iL`` files and in ``--exclude`` lists):

    198.18.0.1  fd18::1                     single addresses
    198.18.0.0/24  fd18:0:0:100::/64        CIDR blocks (host bits are ignored: 198.18.0.5/24 is
                                            the whole /24, network and broadcast included, as nmap)
    198.18.0.1-200  198.18.0.1-198.18.3.7   ranges: last-octet or full; IPv6 too: fd18::1-fd18::ff
    fd18::1-ff                              (an IPv6 range whose end replaces the last group)
    198.18.0-3.1-254  198.18.*.1            nmap octet ranges: per octet N, N-M, N-, -M, * or a
    198.18.1,3,5.1-10                       comma list of those (a cartesian product)
    localhost  example.test                 host names, resolved with getaddrinfo (every address
                                            returned, both families); a target name that does
                                            not resolve is a warning (nmap's habit), an
                                            exclusion that does not is an error (ResolveError)
    ::ffff:198.18.0.1                       IPv4-mapped IPv6 addresses are their IPv4 address
                                            (the part of a v6 block inside ::ffff:0:0/96 too)

From Python, a spec may also be an int (``2130706433`` is 127.0.0.1, as ``ipaddress.ip_address``
reads it) or an ``ipaddress`` address or network object, and a lone str is one spec, not a list.
Target and exclusion files are read line by line: a line longer than ``MAX_LINE`` bytes or a NUL
byte (``-iL /dev/zero``, a binary file) is refused with a TargetError naming the line.

The set is kept as sorted, merged, disjoint integer intervals per family, with exclusions
subtracted by interval arithmetic: memory is O(number of specs), never O(addresses), and the
space has an exact size, ascending iteration, index access (for keyed random order) and membership.
An octet pattern whose product is not a few intervals (``*.*.*.1`` is 16.7 million of them) is
kept instead as a small byte-trie (a product of per-octet range lists, shared subtrees) that gives
the same four operations without expanding anything.

Random order: ``Permutation`` walks a cyclic multiplicative group modulo a prime p > n (as zmap
does): one multiply and one modulo per index, O(1) memory, every index exactly once.

Example::

    space = parse_targets(["127.0.0.0/30", "::1"], exclude=["127.0.0.3"])
    list(space)                    # [IPv4Address('127.0.0.0'), ..., IPv6Address('::1')]
    for addr in space.iter_permuted(seed=7): ...

The modules, lowest first: ``intervals`` (interval arithmetic), ``trie`` (fragmented octet
patterns), ``walk`` (Permutation, shards), ``space`` (TargetSpace), ``specs`` (one token's
grammar), ``parse`` (parse_targets: specs, files, names, exclusions) and ``ports`` (``-p`` specs,
the top-ports ranking, service names). Everything public is re-exported here.
"""

from __future__ import annotations

from hilos.targets.parse import MAX_LINE, Resolver, Spec, parse_targets
from hilos.targets.ports import exclude_ports, parse_ports, service_name, service_port, top_ports
from hilos.targets.space import IPAddress, TargetSpace
from hilos.targets.walk import Permutation, parse_shard, random_seed

__all__ = [
    "MAX_LINE",
    "IPAddress",
    "Permutation",
    "Resolver",
    "Spec",
    "TargetSpace",
    "exclude_ports",
    "parse_ports",
    "parse_shard",
    "parse_targets",
    "random_seed",
    "service_name",
    "service_port",
    "top_ports",
]
