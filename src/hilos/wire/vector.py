"""The batched packet engine: numpy-filled frame batches sent by one sendmmsg (masscan's
templates, zmap's batches), and the vectorised keyed walk and cookies they are filled from.

How a probe kind plugs in (ICMP echo and TCP SYN/ACK in hilos.probes.vector; UDP next), the
shape of zmap's probe modules (thread_initialize / make_packet / validate_packet):

- ``VectorProbe.layout``: a numpy structured dtype naming the big-endian fields of one frame
  that change per probe (the rest of the itemsize is constant bytes), and ``template``: the
  whole constant frame. ``FrameBatch`` copies the template into every slot once.
- ``VectorProbe.patch(rows, dst, port)``: fill the per-probe fields of ``rows`` (a structured
  view of the first n slots) for destinations ``dst`` (uint32) and ports ``port`` (uint16):
  cookies from `tcp_cookies`/`echo_cookies`, checksums from the template's precomputed partial
  sum plus the changed words (`fold`). No Python loop per probe.
- ``VectorProbe.validate(pkts, lens)``: a batch of received packets (rows of uint8, IP header
  first) to ``(ok, addr, port, kind)`` arrays: ``ok`` true only where the reply's cookie
  (recomputed for the whole batch) matches. It must never raise on garbage.

Then ``FrameBatch(probe, sock, size).send(dst, port)`` patches and sends up to `size` probes
with one system call (ctypes releases the GIL during it).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from hilos.targets.walk import Permutation
from hilos.wire.batch import MmsgVector
from hilos.wire.cookie import M1, M2, M3, Cookie

__all__ = [
    "U8",
    "U16",
    "U32",
    "U64",
    "Answers",
    "FrameBatch",
    "VectorProbe",
    "echo_cookies",
    "fold",
    "median",
    "tcp_cookies",
    "walk_batches",
]

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]

_u64 = np.uint64


def tcp_seeds(cookie: Cookie, addrs: npt.NDArray[Any]) -> U64:
    """`Cookie.host_seed` of every IPv4 address (below 2**64) in `addrs`."""
    x = (addrs.astype(np.uint64) ^ _u64(cookie.k1)) * _u64(M1)
    x ^= x >> _u64(31)
    x = (x ^ _u64(cookie.k2)) * _u64(M2)
    out: U64 = x ^ (x >> _u64(29))
    return out


def _values(seed: U64, word: U64 | np.uint64) -> U32:
    """`Cookie.value` of every seed with its port word ``dport << 16 ^ sport``."""
    x = (seed ^ word) * _u64(M3)
    x ^= x >> _u64(32)
    out: U32 = ((x * _u64(M1)) >> _u64(32)).astype(np.uint32)
    return out


def tcp_cookies(
    cookie: Cookie, addrs: npt.NDArray[Any], dports: npt.NDArray[Any], sports: npt.NDArray[Any]
) -> U32:
    """`Cookie.value(Cookie.host_seed(a), dport, sport)` for every probe, bit for bit."""
    word = (dports.astype(np.uint64) << _u64(16)) ^ sports.astype(np.uint64)
    return _values(tcp_seeds(cookie, addrs), word)


def echo_cookies(cookie: Cookie, addrs: npt.NDArray[Any]) -> U32:
    """`Cookie.echo(a)` (the TCP cookie with both ports 0) for every IPv4 address in `addrs`."""
    return _values(tcp_seeds(cookie, addrs), _u64(0))


def median(values: npt.NDArray[np.float64]) -> float:
    """The median of the finite values (nan when none). np.median and np.nanmedian import
    numpy.ma (~14 ms of every run's start) for what a partition does."""
    v = values[np.isfinite(values)]
    n = len(v)
    if not n:
        return float("nan")
    half = n // 2
    part = np.partition(v, [half - 1, half] if n % 2 == 0 else [half])
    return float(part[half] if n % 2 else (part[half - 1] + part[half]) / 2)


def fold(total: npt.NDArray[Any]) -> U16:
    """The Internet checksum of words summing to `total` (uint64, any size): the sum of a
    number's 16-bit words is the number mod 0xFFFF; a non-zero multiple of 0xFFFF is ones'
    complement negative zero and checksums to 0 (hilos.wire.checksum's rule; callers' sums are
    never all-zero data)."""
    t = total % _u64(0xFFFF)
    out: U16 = np.where(t == 0, _u64(0), _u64(0xFFFF) - t).astype(np.uint16)
    return out


def _mulmod(x: int, powers: U64, p: int) -> U64:
    """x * powers mod p without overflow for p < 2**40: powers split in 20-bit halves."""
    xs = _u64(x)
    hi = (xs * (powers >> _u64(20))) % _u64(p)
    out: U64 = ((hi << _u64(20)) + xs * (powers & _u64(0xFFFFF))) % _u64(p)
    return out


def walk_batches(
    perm: Permutation, size: int, shard: tuple[int, int] = (1, 1)
) -> Iterator[npt.NDArray[np.int64]]:
    """`perm.shard(*shard)` in order, as int64 arrays of at most `size` indices: the cyclic
    walk x -> x*g mod p computed for a whole batch (x0 * g**j for j < size, one table of
    powers), values above n skipped as the scalar walk skips them."""
    i, count = shard
    p = perm.prime
    if p >= 1 << 40:  # products would overflow uint64: the scalar walk, in chunks
        it = perm.shard(i, count)
        while chunk := list(islice(it, size)):
            yield np.array(chunk, dtype=np.int64)
        return
    perm.shard(i, count)  # validates the shard
    steps = (p - 2 - (i - 1)) // count + 1 if i - 1 <= p - 2 else 0
    g = pow(perm.generator, count, p)
    x = perm.start * pow(perm.generator, i - 1, p) % p
    powers = np.empty(size, dtype=np.uint64)
    acc = 1
    for j in range(size):
        powers[j] = acc
        acc = acc * g % p
    g_size, n = acc, perm.n
    for done in range(0, steps, size):
        m = min(size, steps - done)
        xs = _mulmod(x, powers[:m], p)
        x = x * g_size % p
        yield xs[xs <= _u64(n)].astype(np.int64) - 1


@dataclass(frozen=True)
class Answers:
    """A validated batch: `ok` marks the replies whose cookie matched; `addr`, `port` (0 for
    echo) and `kind` are meaningful there; `sent_ns` is the echo's send time (0 for TCP)."""

    ok: npt.NDArray[np.bool_]
    addr: U32
    port: U16
    kind: U8
    sent_ns: npt.NDArray[np.uint64]


class VectorProbe(Protocol):
    """A probe kind for the batched engine (see the module docstring)."""

    layout: np.dtype[np.void]
    template: bytes

    def patch(self, rows: npt.NDArray[np.void], dst: U32, port: U16) -> None: ...

    def validate(self, pkts: U8, lens: npt.NDArray[np.int64]) -> Answers: ...


_SOCKADDR_IN: Final = np.dtype(
    {"names": ["family", "addr"], "formats": ["=u2", ">u4"], "offsets": [0, 4], "itemsize": 16}
)


class FrameBatch:
    """`size` slots holding the probe's template in one contiguous buffer, and the sendmmsg
    vector over them: ``send(dst, port)`` patches the first len(dst) slots in numpy and hands
    them to the kernel at once; returns how many frames left (hilos.wire.batch's policy).

    `addressed`: the socket is an unconnected raw IP socket (IP_HDRINCL; the template starts at
    the IP header), so every message also carries its destination as a sockaddr_in, filled
    from `dst` in the same pass. Otherwise (AF_PACKET bound to an interface) frames go as is.
    """

    def __init__(
        self, probe: VectorProbe, sock: socket.socket, size: int, *, addressed: bool = False
    ) -> None:
        slot = probe.layout.itemsize
        if len(probe.template) != slot:
            raise ValueError(f"template of {len(probe.template)} bytes for a {slot}-byte layout")
        self.probe = probe
        self.size = size
        self.buf = bytearray(probe.template * size)
        self.rows = np.frombuffer(self.buf, dtype=probe.layout)
        self.frames = np.frombuffer(self.buf, dtype=np.uint8).reshape(size, slot)
        self._names: npt.NDArray[np.void] | None = None
        names: bytearray | None = None
        if addressed:
            names = bytearray(size * _SOCKADDR_IN.itemsize)
            self._names = np.frombuffer(names, dtype=_SOCKADDR_IN)
            self._names["family"] = socket.AF_INET
        self._mmsg = MmsgVector(
            sock.fileno(), self.buf, [slot] * size, slot, names, _SOCKADDR_IN.itemsize
        )
        self._keep = names  # the vector points into it

    def fill(self, dst: U32, port: U16) -> int:
        """Patch the first len(dst) slots (at most `size`); returns how many."""
        n = len(dst)
        self.probe.patch(self.rows[:n], dst, port)
        if self._names is not None:
            self._names["addr"][:n] = dst
        return n

    def send(self, dst: U32, port: U16) -> int:
        return self._mmsg.send(self.fill(dst, port))
