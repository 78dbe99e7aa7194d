"""Host discovery (ping sweep): ICMP echo plus TCP probes over a target space, streaming results.

How a sweep runs::

    targets (lazy int ranges) ──► senders, paced by one TokenBucket (--rate)
        privileged, IPv4 behind a gateway: every probe of an address (echo, SYN 443, ACK 80)
            built as an Ethernet frame, batched by sendmmsg, from two processes (_FrameSender)
        otherwise one thread per engine: ICMP echo (raw or the unprivileged "ping" socket),
            raw TCP (hilos.probes.tcp), or non-blocking connect to 80 and 443 (unprivileged)
    receiver threads ──► validate each answer from its own fields (keyed cookie) ──► results queue
    default retries: loss probes to hosts that answered; a retry pass only if some were lost
    explicit --retries N: N more passes over the addresses that have not answered yet
    then one wait after the last send (adaptive, see Sweeper) ──► down hosts, if asked for

Nothing is stored per probe, only the answers: a /8 costs memory in proportion to the hosts that
are up, not to its 16.7 million addresses.

Example::

    from hilos.sweep import sweep
    from hilos.targets import parse_targets

    for host in sweep(parse_targets(["127.0.0.1"]), timeout=1.0):
        print(host.host, host.status, host.reason, host.rtt_ms)
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
import queue
import random
import resource
import selectors
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hilos.errors import HilosError, PrivilegeError, UsageError
from hilos.probes.icmp import (
    ECHO_PAD,
    V6_TAG,
    EchoEngine,
    LinkTx,
    can_open_raw,
    ping_group_allows,
)
from hilos.probes.ratelimit import TokenBucket
from hilos.results import HostResult
from hilos.targets import TargetSpace
from hilos.validate import MAX_RETRIES

__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_V6_ADDRESSES",
    "MIN_WAIT",
    "SweepProgress",
    "Sweeper",
    "check_space_size",
    "sweep",
]

Method = Literal["auto", "icmp", "tcp"]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address | str
Range = tuple[int, int, int]  # (family, first, last), inclusive

#: Longest wait for an answer (seconds) when --timeout is not given; also the wait used before
#: any answer has been seen. LAN-friendly and the same as nmap's initial RTT timeout.
DEFAULT_TIMEOUT = 1.0
#: Shortest adaptive wait (nmap's --min-rtt-timeout at -T4 is 100 ms as well).
MIN_WAIT = 0.1
DEFAULT_RETRIES = 1
#: Packets per second when --rate is not given: a ceiling, not a pace. Two sender processes
#: reach ~250k frames/s on 2 cores (300k capped them in the lab); 1M 66-byte frames is ~530
#: Mbit/s, what a gigabit LAN carries. On slower links give --rate (nmap: --max-rate).
DEFAULT_RATE = 1_000_000.0
_TCP_PORTS = (443, 80)  # raw: SYN to 443, ACK to 80 (nmap -PS443 -PA80); connect: both
_DEFAULT_THREADS = 16
_CONNECT_CHUNK = 256  # addresses per connect worker task (2 sockets each)

_TCP_REASONS = {1: "syn-ack", 2: "rst"}
_OCTETS = tuple(str(i) for i in range(256))
# An IPv4 TCP probe as an Ethernet frame: eth + IP bytes 0-9, IP checksum, source, destination,
# sport, dport, seq, ack, offset/flags + window, TCP checksum, urgent pointer + MSS option.
_TCP_FRAME = struct.Struct("!24sH4sIHHII4sH6s")
# An ICMP echo as an Ethernet frame (the layout of hilos.probes.icmp's echo requests).
_ICMP_FRAME = struct.Struct("!24sH4sIBBHIQI12s")
# Echo, SYN and ACK of one address in three consecutive 66-byte slots, for one pack_into.
_ALL_FRAMES = struct.Struct("!24sH4sIBBHIQI12s" + "24sH4sIHHII4sH6s8x" + "24sH4sIHHII4sH6s8x")
_ECHO_PAD = ECHO_PAD
_ECHO_LEN = 20 + len(_ECHO_PAD)  # ICMP header 8 + send time 8 + cookie 4 + padding
_MAX_SENDERS = 2  # sender processes for the frame path (the kernel work is what they share)
_LOSS_HOSTS = 512  # hosts that get loss probes, at most
_LOSS_MIN_HOSTS = 8  # fewer answering hosts than this: no measurement, retry
_LOSS_PROBES = 256  # loss probes in all, at least (in up to 8 rounds)
_SLOT = 66  # bytes per frame slot in a send batch (the echo frame is the longest)
_BATCH_ADDRS = 64  # addresses per sendmmsg batch (up to 192 frames)
_FORK_MIN = 4096  # addresses in a pass before a second sender process pays for its fork
_PACE_BATCH = 32
_PIECE = 4096  # addresses per range handed to the engines (a multiple of 256: whole /24s)
#: The largest IPv6 target space a sweep or scan accepts (see check_space_size).
MAX_V6_ADDRESSES = 1 << 24


def check_space_size(space: TargetSpace) -> None:
    """Refuse, up front, an IPv6 space too big to probe address by address (UsageError).

    An IPv6 /64 is 2**64 addresses: a sweep at a million packets a second would take half a
    million years. nmap has no IPv6 netmask limit and just runs on; hilos refuses above
    MAX_V6_ADDRESSES (a /104, as many addresses as an IPv4 /8).
    """
    if space.size_v6 > MAX_V6_ADDRESSES:
        raise UsageError(
            f"IPv6 target space too big to probe: {space.size_v6} addresses; at most "
            f"{MAX_V6_ADDRESSES} (2^24, a /104) per run: give a narrower range or the "
            "addresses themselves"
        )


@dataclass(frozen=True, slots=True)
class SweepProgress:
    """A running sweep's state: `done` of `total` addresses probed in pass `pass_no` (of at most
    `passes`), `up` hosts found so far."""

    done: int
    total: int
    up: int
    pass_no: int
    passes: int
    elapsed: float


class _Engine(Protocol):
    name: str

    def start(self) -> None: ...

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# Targets as int ranges
# --------------------------------------------------------------------------------------------


def _key_of(addr: Address) -> tuple[int, int]:
    ip = ipaddress.ip_address(addr) if isinstance(addr, str) else addr
    return ip.version, int(ip)


def _host_str(key: int) -> str:
    if key >= V6_TAG:
        return str(ipaddress.IPv6Address(key - V6_TAG))
    return socket.inet_ntoa(key.to_bytes(4, "big"))


class _Targets:
    """Re-iterable (family, first, last) int ranges of the targets, in probing order."""

    def __init__(
        self, targets: TargetSpace | Iterable[Address], randomize: bool, seed: int | None
    ) -> None:
        self._space: TargetSpace | None = None
        self._list: list[tuple[int, int]] | None = None
        self.seed = seed if seed is not None else random.getrandbits(32)
        self.randomize = randomize
        if isinstance(targets, TargetSpace):
            self._space = targets
            self.size = targets.size
            self.families = {
                fam for fam, n in ((4, targets.size_v4), (6, targets.size_v6)) if n > 0
            }
        else:
            # A plain iterable may be a one-shot iterator; retries need a second look, so keep
            # the ints (de-duplicated, order kept). Use a TargetSpace for big spaces.
            seen: dict[tuple[int, int], None] = {}
            for a in targets:
                seen[_key_of(a)] = None
            self._list = list(seen)
            if randomize:
                random.Random(self.seed).shuffle(self._list)
            self.size = len(self._list)
            self.families = {fam for fam, _ in self._list}

    def ranges(self) -> Iterator[Range]:
        if self._list is not None:
            for fam, a in self._list:
                yield fam, a, a
            return
        space = self._space
        assert space is not None
        if self.randomize:
            for ip in space.iter_permuted(self.seed):
                a = int(ip)
                yield ip.version, a, a
            return
        for first, last in space.iter_ranges():
            # In aligned pieces of at most _PIECE addresses: the engines count progress per
            # range, so a cancelled sweep of a /16 knows it probed 4096, not 65536 (summaries).
            fam, a, b = first.version, int(first), int(last)
            while a <= b:
                end = min(b, a | (_PIECE - 1))
                yield fam, a, end
                a = end + 1

    def block_count(self) -> int:
        """How many IPv4 blocks ranges() makes (a range's part inside one /24; only IPv4 goes
        out as frames), cheaply: the size when every range is one address (lists, random)."""
        if self._list is not None or self.randomize:
            return self.size
        return sum((b >> 8) - (a >> 8) + 1 for fam, a, b in self.ranges() if fam == 4)

    def iter_keys(self) -> Iterator[int]:
        for fam, first, last in self.ranges():
            tag = V6_TAG if fam == 6 else 0
            for a in range(first, last + 1):
                yield a + tag


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------

Sink = Callable[[int, str, "float | None"], None]


class _IcmpEngine:
    """ICMP echo through hilos.probes.icmp.EchoEngine (raw or datagram sockets)."""

    def __init__(self, key: int, bucket: TokenBucket, sink: Sink, families: set[int]) -> None:
        self.engine = EchoEngine(key, bucket, sink, families=families)
        kinds = set(self.engine.kinds.values())
        self.raw = kinds == {"raw"}
        self.name = "ICMP echo" + ("" if self.raw else " (unprivileged ping socket)")

    def start(self) -> None:
        self.engine.start()

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int:
        return self.engine.send_ranges(ranges, skip, stop)

    def close(self) -> None:
        self.engine.close()


class _RawTcpEngine:
    """Raw SYN to 443 and ACK to 80 with the raw TCP engine of hilos.probes.tcp.

    The packets, cookies (sequence numbers), send-time source ports and the validating receiver
    are that module's (TcpProber/RawTcpEngine/SynTemplate4): one mechanism with the SYN scan.
    Only the loop is local, working on int addresses so no ipaddress object is made per probe,
    and IPv4 probes leave as Ethernet frames when a LinkTx covers them.
    """

    name = "TCP SYN 443 + ACK 80 (raw)"

    def __init__(self, bucket: TokenBucket, sink: Sink, families: set[int]) -> None:
        from hilos.probes import tcp

        self._tcp = tcp
        self.bucket = bucket

        def on_reply(r: tcp.Reply) -> None:
            if r.port not in _TCP_PORTS:
                return
            key = r.addr + (V6_TAG if r.family == 6 else 0)
            if r.kind == tcp.KIND_UNREACH:
                sink(key, r.reason, None)
            else:
                sink(key, _TCP_REASONS.get(r.kind, "rst"), round(r.rtt_ms, 3))

        self.prober = tcp.TcpProber(on_reply, syn_port=443, ack_port=80, families=families)
        self._templates: dict[int, object] = {}

    def start(self) -> None:
        self.prober.engine.start()

    def close(self) -> None:
        self.prober.close()

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int:
        sent = 0
        for fam, first, last in ranges:
            if stop.is_set():
                break
            if fam == 6:
                sent += self._pass6(first, last, skip, stop)
            else:
                sent += self._pass4(first, last, skip, stop)
        self.prober.engine.check()
        return sent

    def _pass4(self, first: int, last: int, skip: dict[int, object], stop: threading.Event) -> int:
        # Through the IP socket (IP_HDRINCL): used when no LinkTx covers the range (on-link
        # targets, loopback). The frame path is _FrameSender.
        tcp = self._tcp
        eng = self.prober.engine
        if eng.tx4 is None:
            return 0
        cookie = eng.cookie
        host_seed, value = cookie.host_seed, cookie.value
        tick = tcp.send_tick
        take = self.bucket.take
        limited = not self.bucket.unlimited
        octets = _OCTETS
        sendto = eng.tx4.sendto
        sent = pending = 0
        a = first
        while a <= last:
            if stop.is_set():
                break
            block_end = min(last, a | 0xFF)
            template = self._template4(a)
            prefix = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}."
            syn, ack = template.syn, template.ack
            for b in range(a, block_end + 1):
                if b in skip:
                    continue
                if limited:
                    pending += 2
                    if pending >= _PACE_BATCH:
                        take(pending)
                        pending = 0
                seed = host_seed(b)
                sport = tick()
                d4 = b.to_bytes(4, "big")
                hs = (b >> 16) + (b & 0xFFFF)
                dest = (prefix + octets[b & 255], 0)
                try:
                    sendto(syn(d4, hs, 443, sport, value(seed, 443, sport)), dest)
                    sendto(ack(d4, hs, 80, sport, value(seed, 80, sport)), dest)
                except OSError as exc:
                    if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                        time.sleep(0.001)  # queue full: this address waits for the retry pass
                    elif exc.errno not in (errno.EHOSTUNREACH, errno.ENETUNREACH):
                        raise
                    continue
                sent += 2
            a = block_end + 1
        return sent

    def _template4(self, a: int) -> Any:
        net = a >> 8
        t = self._templates.get(net)
        if t is None:
            src = self._tcp.source_address(ipaddress.IPv4Address(a))
            t = self._templates[net] = self._tcp.SynTemplate4(src)
        return t

    def _pass6(self, first: int, last: int, skip: dict[int, object], stop: threading.Event) -> int:
        probe = self.prober.probe
        take = self.bucket.take
        limited = not self.bucket.unlimited
        sent = pending = 0
        for a in range(first, last + 1):
            if a + V6_TAG in skip:
                continue
            if sent & 0xFF == 0 and stop.is_set():
                break
            if limited:
                pending += 2
                if pending >= _PACE_BATCH:
                    take(pending)
                    pending = 0
            probe(ipaddress.IPv6Address(a))
            sent += 2
        return sent


class _FrameSender:
    """Privileged IPv4 fast path: every probe of an address (echo, SYN 443, ACK 80) built as an
    Ethernet frame in one loop and sent on the LinkTx socket; the engines' receivers validate
    the answers as usual. On multi-core machines a forked child sends half of the /24 blocks, so
    the kernel's per-packet work (most of a probe's cost) runs on two cores without the GIL.
    """

    def __init__(
        self,
        link: LinkTx,
        icmp: _IcmpEngine | None,
        tcpe: _RawTcpEngine | None,
        rate: float | None,
        parts: int,
    ) -> None:
        self.link = link
        self.icmp = icmp
        self.tcpe = tcpe
        self.rate = rate
        self.parts = max(1, parts)
        self.bucket = TokenBucket(rate, burst=64)
        self.progress = 0  # addresses handled in the current pass (estimated across senders)

    def run_pass(
        self,
        ranges: Callable[[], Iterable[Range]],
        skip: dict[int, object],
        stop: threading.Event,
        todo: int,
        blocks: int,
    ) -> int:
        """Send one pass over `ranges()` (called in each sender process). `todo` is the number
        of addresses (is a second process worth its fork?), `blocks` how many blocks `ranges()`
        makes (a block: the part of a range inside one /24)."""
        parts = self.parts if todo >= _FORK_MIN else 1
        self.progress = 0
        if parts == 1:
            return self._send(ranges(), skip, stop, None, 1, self.bucket)
        share = None if self.rate is None else self.rate / parts
        claims = _Claims(blocks)
        pids = []
        try:
            for _ in range(1, parts):
                pid = os.fork()
                if pid == 0:  # the child: send its blocks, never return into the caller's code
                    code = 0
                    try:
                        signal.signal(signal.SIGINT, signal.SIG_DFL)
                        event = threading.Event()
                        self._send(ranges(), skip, event, claims, parts, TokenBucket(share, 64))
                    except BaseException:
                        code = 1
                    finally:
                        os._exit(code)
                pids.append(pid)
            return self._send(ranges(), skip, stop, claims, parts, TokenBucket(share, 64))
        finally:
            claims.close()
            for pid in pids:
                if stop.is_set():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)

    def _send(
        self,
        ranges: Iterable[Range],
        skip: dict[int, object],
        stop: threading.Event,
        claims: _Claims | None,
        parts: int,
        bucket: TokenBucket,
    ) -> int:
        """Send the frames of every block this process claims (all of them without `claims`)."""
        # The hot loop of a privileged sweep. Going through Cookie.host_seed/value and
        # SynTemplate4.syn/ack costs ~11 us of Python per address (profiled); here the same
        # splitmix64 cookie arithmetic and the same 44-byte probes (plus the IP checksum the
        # kernel fills for IP_HDRINCL) are inlined into one struct.pack per frame, ~3 us for
        # all three probes. tests/test_sweep.py checks these frames against SynTemplate4 and
        # that the engines' receivers accept their answers.
        link = self.link
        src4 = link.source.to_bytes(4, "big")
        take = bucket.take
        limited = not bucket.unlimited
        now_ns = time.monotonic_ns
        do_icmp = self.icmp is not None
        do_tcp = self.tcpe is not None
        # ICMP echo frame.
        ikey = self.icmp.engine.key if self.icmp is not None else 0
        ihead, ip_base_i = link.ip_prefix(socket.IPPROTO_ICMP, 20 + _ECHO_LEN)
        ibase = (((8 << 8) + int.from_bytes(_ECHO_PAD, "big")) % 0xFFFF) if do_icmp else 0
        pad = _ECHO_PAD
        # TCP frames (hilos.probes.tcp's probes and cookies).
        if self.tcpe is not None:
            tcp = self.tcpe._tcp
            cookie = self.tcpe.prober.engine.cookie
            k1, k2 = cookie.k1, cookie.k2
            m1, m2, m3, mask = tcp._M1, tcp._M2, tcp._M3, tcp._MASK64
            tick = tcp.send_tick
            template = tcp.SynTemplate4(ipaddress.IPv4Address(link.source))
            thead = link.eth + template.prefix[:10]
            ip_base_t = int.from_bytes(template.prefix, "big") % 0xFFFF
            syn_base = (
                template.const + int.from_bytes(template.win_flags_syn[:2], "big") + 443
            ) % 0xFFFF
            ack_base = (
                template.const + int.from_bytes(template.win_flags_ack[:2], "big") + 80
            ) % 0xFFFF
            wf_syn, wf_ack, suffix = template.win_flags_syn, template.win_flags_ack, template.suffix
        else:
            k1 = k2 = m1 = m2 = m3 = mask = ip_base_t = syn_base = ack_base = 0
            tick = _zero
            thead = wf_syn = wf_ack = suffix = b""
        syn_key, ack_key = 443 << 16, 80 << 16
        sport = tick()
        per_addr = (1 if do_icmp else 0) + (2 if do_tcp else 0)
        # Frames are packed straight into one batch buffer (struct.pack_into, no bytes object
        # per frame) and leave by sendmmsg: one system call and one GIL release per batch
        # instead of per frame (the parent shares its GIL with the receiver threads).
        batch = _Batch(link.sock, _BATCH_ADDRS, do_icmp, do_tcp)
        buf = batch.buf
        ipack = _ICMP_FRAME.pack_into
        tpack = _TCP_FRAME.pack_into
        apack = _ALL_FRAMES.pack_into
        both = do_icmp and do_tcp
        slot = _SLOT
        slot3 = 3 * _SLOT
        off = 0
        end = batch.size
        sent = pending = 0
        nth = 0  # block number, for the split between processes
        lo, hi = (0, 1 << 62) if claims is None else claims.next()
        finished = lo >= hi
        for _fam, first, last in ranges:
            if finished:
                break
            a = first
            while a <= last:
                block_end = min(last, a | 0xFF)
                if nth >= hi:  # past our chunk: claim the next free one (always ahead)
                    lo, hi = claims.next() if claims is not None else (0, 0)
                    if lo >= hi:
                        finished = True  # none left: the other senders have the rest
                mine = nth >= lo
                nth += 1
                if finished or stop.is_set():
                    finished = True
                    break
                if not mine:
                    a = block_end + 1
                    continue
                self.progress += (block_end - a + 1) * parts  # the other senders keep pace
                for b in range(a, block_end + 1):
                    if b in skip:
                        continue
                    if limited:
                        pending += per_addr
                        if pending >= _PACE_BATCH:
                            take(pending)
                            pending = 0
                    if both:
                        # All three frames of the address in one pack_into (slots are
                        # contiguous): a third of the call overhead of packing each.
                        c = hash((ikey, b)) & 0xFFFFFFFF
                        t = now_ns()
                        x = ((b ^ k1) * m1) & mask
                        x ^= x >> 31
                        x = ((x ^ k2) * m2) & mask
                        seed = x ^ (x >> 29)
                        if not b & 15:
                            sport = tick()  # see below
                        y = ((seed ^ syn_key ^ sport) * m3) & mask
                        y ^= y >> 32
                        c_syn = ((y * m1) & mask) >> 32
                        y = ((seed ^ ack_key ^ sport) * m3) & mask
                        y ^= y >> 32
                        c_ack = ((y * m1) & mask) >> 32
                        ip_csum = 0xFFFF - (ip_base_t + b) % 0xFFFF
                        u = b + sport
                        apack(
                            buf, off,
                            ihead, 0xFFFF - (ip_base_i + b) % 0xFFFF, src4, b,
                            8, 0, 0xFFFF - (ibase + c + c + t) % 0xFFFF, c, t, c, pad,
                            thead, ip_csum, src4, b, sport, 443, c_syn, 0, wf_syn,
                            0xFFFF - (syn_base + u + c_syn) % 0xFFFF, suffix,
                            thead, ip_csum, src4, b, sport, 80, c_ack, c_ack, wf_ack,
                            0xFFFF - (ack_base + u + c_ack + c_ack) % 0xFFFF, suffix,
                        )  # fmt: skip
                        off += slot3
                        if off >= end:
                            sent += batch.flush(off // slot)
                            off = 0
                        continue
                    if do_icmp:
                        c = hash((ikey, b)) & 0xFFFFFFFF
                        t = now_ns()
                        ipack(
                            buf, off, ihead, 0xFFFF - (ip_base_i + b) % 0xFFFF, src4, b,
                            8, 0, 0xFFFF - (ibase + c + c + t) % 0xFFFF, c, t, c, pad,
                        )  # fmt: skip
                        off += slot
                    if do_tcp:
                        x = ((b ^ k1) * m1) & mask
                        x ^= x >> 31
                        x = ((x ^ k2) * m2) & mask
                        seed = x ^ (x >> 29)
                        if not b & 15:
                            # The source port carries the send time in 262 us ticks (the
                            # engine's RTT); 16 addresses take well under one tick to build.
                            sport = tick()
                        y = ((seed ^ syn_key ^ sport) * m3) & mask
                        y ^= y >> 32
                        c_syn = ((y * m1) & mask) >> 32
                        y = ((seed ^ ack_key ^ sport) * m3) & mask
                        y ^= y >> 32
                        c_ack = ((y * m1) & mask) >> 32
                        ip_csum = 0xFFFF - (ip_base_t + b) % 0xFFFF
                        t = b + sport
                        tpack(
                            buf, off, thead, ip_csum, src4, b, sport, 443, c_syn, 0, wf_syn,
                            0xFFFF - (syn_base + t + c_syn) % 0xFFFF, suffix,
                        )  # fmt: skip
                        tpack(
                            buf, off + slot, thead, ip_csum, src4, b, sport, 80, c_ack, c_ack,
                            wf_ack, 0xFFFF - (ack_base + t + c_ack + c_ack) % 0xFFFF, suffix,
                        )  # fmt: skip
                        off += slot + slot
                    if off >= end:
                        sent += batch.flush(off // slot)
                        off = 0
                a = block_end + 1
        if off:
            sent += batch.flush(off // slot)
        return sent


class _Claims:
    """Deals chunks of block numbers out to the sender processes, first come first served, so
    a busier process (the parent also runs the receivers) simply takes fewer of them.

    A pipe holds one 4-byte token per chunk, in increasing order; a read of 4 bytes from a pipe
    is atomic (below PIPE_BUF), so each chunk goes to exactly one process. `next()` gives the
    claimed chunk as [lo, hi) block numbers, or an empty range when none are left.
    """

    _TOKEN = struct.Struct("=I")
    CHUNKS = 128

    def __init__(self, blocks: int) -> None:
        self.size = max(1, -(-blocks // self.CHUNKS))
        count = -(-blocks // self.size)
        self._r, w = os.pipe()
        try:
            os.write(w, b"".join(self._TOKEN.pack(i) for i in range(count)))  # < 64 KiB
        finally:
            os.close(w)

    def next(self) -> tuple[int, int]:
        data = os.read(self._r, 4)
        if len(data) < 4:
            return (0, 0)
        i = self._TOKEN.unpack(data)[0]
        return (i * self.size, (i + 1) * self.size)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._r)


class _Batch:
    """A buffer of fixed-size frame slots and the sendmmsg(2) vector that sends them at once.

    Slot k holds frame k: for each address its echo (66 bytes) and/or SYN and ACK (58 bytes),
    in that order, so every slot's length is known in advance. Without ctypes or sendmmsg
    (not Linux/glibc) the frames go one send() each.
    """

    def __init__(self, sock: socket.socket, addrs: int, icmp: bool, tcp: bool) -> None:
        lens = ([_ICMP_FRAME.size] if icmp else []) + ([_TCP_FRAME.size] * 2 if tcp else [])
        self.count = addrs * len(lens)
        self.lens = lens * addrs
        self.size = self.count * _SLOT
        self.sock = sock
        self.buf = bytearray(self.size)
        self._mmsg: Any = None
        try:
            self._mmsg = _MmsgVector(sock.fileno(), self.buf, self.lens)
        except (OSError, AttributeError, TypeError, ValueError):
            self._mmsg = None

    def flush(self, frames: int) -> int:
        """Send the first `frames` slots; returns how many frames left."""
        if self._mmsg is not None:
            return int(self._mmsg.send(frames))
        view = memoryview(self.buf)
        sent = 0
        for k in range(frames):
            try:
                self.sock.send(view[k * _SLOT : k * _SLOT + self.lens[k]])
                sent += 1
            except OSError as exc:
                if exc.errno not in (errno.ENOBUFS, errno.EAGAIN):
                    raise
                time.sleep(0.001)  # queue full: this frame waits for a retry
        return sent


class _MmsgVector:
    """ctypes glue for sendmmsg(2) over a fixed bytearray: one mmsghdr/iovec per slot."""

    def __init__(self, fd: int, buf: bytearray, lens: list[int]) -> None:
        import ctypes

        class Iovec(ctypes.Structure):
            _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))

        class Msghdr(ctypes.Structure):
            _fields_ = (
                ("name", ctypes.c_void_p),
                ("namelen", ctypes.c_uint32),
                ("iov", ctypes.c_void_p),
                ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p),
                ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int),
            )

        class Mmsghdr(ctypes.Structure):
            _fields_ = (("hdr", Msghdr), ("len", ctypes.c_uint))

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sendmmsg
        fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
        fn.restype = ctypes.c_int
        n = len(lens)
        self._raw = (ctypes.c_char * len(buf)).from_buffer(buf)  # shares the bytearray
        base = ctypes.addressof(self._raw)
        self._iov = (Iovec * n)()
        self._msgs = (Mmsghdr * n)()
        for k, length in enumerate(lens):
            self._iov[k].base = base + k * _SLOT
            self._iov[k].len = length
            self._msgs[k].hdr.iov = ctypes.addressof(self._iov[k])
            self._msgs[k].hdr.iovlen = 1
        self._fn = fn
        self._fd = fd
        self._addr = ctypes.addressof(self._msgs)
        self._size = ctypes.sizeof(Mmsghdr)
        self._errno = ctypes.get_errno

    def send(self, frames: int) -> int:
        done = 0
        tries = 0
        while done < frames:
            n = self._fn(self._fd, self._addr + done * self._size, frames - done, 0)
            if n > 0:
                done += n
                continue
            err = self._errno()
            if err == errno.EINTR:
                continue
            if err in (errno.ENOBUFS, errno.EAGAIN) and tries < 20:
                tries += 1
                time.sleep(0.0005)  # the device queue is full: give it a moment
                continue
            if err in (errno.ENOBUFS, errno.EAGAIN):
                return done  # the rest of this batch waits for a retry pass
            raise OSError(err, os.strerror(err))
        return done


def _zero() -> int:
    return 0


class _ConnectEngine:
    """Unprivileged TCP discovery: non-blocking connect() to 80 and 443, many in flight.

    Work is cut into chunks of addresses run by `threads` workers (hilos.pool); each worker
    starts its chunk's connects at once and waits on one selector until every socket resolved or
    the wait ran out. Accepted (syn-ack) or refused (conn-refused) means up; EHOSTUNREACH /
    ENETUNREACH means down (host-unreach).
    """

    name = "TCP connect to 80 and 443"

    def __init__(
        self, bucket: TokenBucket, sink: Sink, threads: int, wait: Callable[[], float]
    ) -> None:
        self.bucket = bucket
        self.sink = sink
        self.wait = wait
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 1 << 16) if hard != resource.RLIM_INFINITY else 1 << 16
        if soft != resource.RLIM_INFINITY and soft < want:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
                soft = want
            except (ValueError, OSError):
                pass
        budget = max(64, (soft if soft != resource.RLIM_INFINITY else 1 << 16) - 128)
        # Two sockets per address in flight, across all workers: stay inside RLIMIT_NOFILE.
        self.chunk = max(1, min(_CONNECT_CHUNK, budget // (2 * threads)))
        self.threads = max(1, min(threads, budget // (2 * self.chunk)))

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int:
        from hilos.pool import Pool

        def chunks() -> Iterator[list[tuple[int, int]]]:
            chunk: list[tuple[int, int]] = []
            for fam, first, last in ranges:
                tag = V6_TAG if fam == 6 else 0
                for a in range(first, last + 1):
                    if a + tag in skip:
                        continue
                    chunk.append((fam, a))
                    if len(chunk) >= self.chunk:
                        if stop.is_set():
                            return
                        yield chunk
                        chunk = []
            if chunk and not stop.is_set():
                yield chunk

        sent = 0

        def work(chunk: list[tuple[int, int]]) -> int:
            return self._probe_chunk(chunk, stop)

        with Pool(work, threads=self.threads, name="hilos-connect") as pool:
            for res in pool.imap_unordered(chunks()):
                if res.error is not None and not isinstance(res.error, Exception):
                    raise res.error
                if isinstance(res.error, HilosError):
                    raise res.error
                sent += res.value or 0
                if stop.is_set():
                    pool.cancel()
                    break
        return sent

    def _probe_chunk(self, chunk: list[tuple[int, int]], stop: threading.Event) -> int:
        self.bucket.take(2 * len(chunk))
        sel = selectors.DefaultSelector()
        pending: dict[socket.socket, tuple[int, float]] = {}
        sink = self.sink
        sent = 0
        try:
            for fam, a in chunk:
                af = socket.AF_INET if fam == 4 else socket.AF_INET6
                host = (
                    socket.inet_ntoa(a.to_bytes(4, "big"))
                    if fam == 4
                    else socket.inet_ntop(socket.AF_INET6, a.to_bytes(16, "big"))
                )
                key = a + (V6_TAG if fam == 6 else 0)
                for port in _TCP_PORTS:
                    try:
                        s = socket.socket(af, socket.SOCK_STREAM)
                    except OSError as exc:
                        if exc.errno in (errno.EMFILE, errno.ENFILE):
                            break  # the rest of this chunk stays unanswered: a retry gets it
                        raise
                    s.setblocking(False)
                    # RST on close: no TIME_WAIT pile-up after thousands of probes.
                    s.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    t0 = time.monotonic()
                    err = s.connect_ex((host, port))
                    sent += 1
                    if err in (0, errno.EINPROGRESS):
                        if err == 0:
                            sink(key, "syn-ack", (time.monotonic() - t0) * 1000)
                            s.close()
                            continue
                        pending[s] = (key, t0)
                        sel.register(s, selectors.EVENT_WRITE)
                    else:
                        s.close()
                        self._classify(key, err, t0)
            deadline = time.monotonic() + self.wait()
            while pending and not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for skey, _ in sel.select(min(left, 0.05)):
                    done = skey.fileobj
                    assert isinstance(done, socket.socket)
                    key, t0 = pending.pop(done)
                    sel.unregister(done)
                    err = done.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    done.close()
                    if err == 0:
                        sink(key, "syn-ack", (time.monotonic() - t0) * 1000)
                    else:
                        self._classify(key, err, t0)
        finally:
            for s in pending:
                s.close()
            sel.close()
        return sent

    def _classify(self, key: int, err: int, t0: float) -> None:
        if err == errno.ECONNREFUSED:
            self.sink(key, "conn-refused", (time.monotonic() - t0) * 1000)
        elif err in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            self.sink(key, "host-unreach", None)


# --------------------------------------------------------------------------------------------
# The sweep
# --------------------------------------------------------------------------------------------

_UP_REASONS = frozenset({"echo-reply", "syn-ack", "rst", "conn-refused"})
_DONE = object()


class Sweeper:
    """A ping sweep over `targets`; iterate it to get HostResults as hosts are found.

    Up hosts are yielded as soon as they answer (each once, with its first answer's reason and
    RTT). With `all_hosts=True` the down hosts follow at the end (reason host-unreach,
    time-exceeded or no-response). `method`: "auto" uses every probe this process may send,
    "icmp" or "tcp" forces one kind; `notice` says which were chosen (also sent to `on_notice`).

    Timing: `timeout` is the longest wait for an answer after a probe (default 1.0 s). Without
    an explicit `timeout` the wait adapts as nmap's does: smoothed RTT + 4 x its variation (at
    least twice the smoothed RTT), within [MIN_WAIT, DEFAULT_TIMEOUT]. The sweep waits once
    after its last send, not per host. `retries` (default 1) more passes go only to addresses
    that have not answered; a late answer to an earlier pass still counts. With the default,
    the retry pass is skipped when loss probes show the path lost nothing (see _probe_loss);
    an explicit `retries` always runs. `rate` caps packets (or connects) per second overall.

        sweeper = Sweeper(parse_targets(["127.0.0.1"]), method="icmp")
        up = [r.host for r in sweeper]
    """

    def __init__(
        self,
        targets: TargetSpace | Iterable[Address],
        *,
        method: Method = "auto",
        rate: float | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        threads: int | None = None,
        randomize: bool = False,
        seed: int | None = None,
        all_hosts: bool = False,
        on_progress: Callable[[SweepProgress], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        if method not in ("auto", "icmp", "tcp"):
            raise UsageError(f"unknown sweep method {method!r} (auto, icmp or tcp)")
        if timeout is not None and not timeout > 0:
            raise UsageError(f"timeout must be positive, not {timeout!r}")
        if retries is not None and not 0 <= retries <= MAX_RETRIES:
            raise UsageError(f"retries must be between 0 and {MAX_RETRIES}, not {retries!r}")
        if rate is not None and not rate > 0:
            raise UsageError(f"rate must be positive, not {rate!r}")
        if threads is not None and threads < 1:
            raise UsageError(f"threads must be at least 1, not {threads!r}")
        self.method = method
        self.rate = DEFAULT_RATE if rate is None else rate
        self.timeout = timeout
        self.retries = DEFAULT_RETRIES if retries is None else retries
        self.threads = threads or _DEFAULT_THREADS
        self.all_hosts = all_hosts
        self.on_progress = on_progress
        self.on_notice = on_notice
        # Targets given as names keep them in the results (looked up per answer, and only when
        # some target was a name).
        self._space: TargetSpace | None = None
        if isinstance(targets, TargetSpace):
            check_space_size(targets)
            if targets.names:
                self._space = targets
        self._targets = _Targets(targets, randomize, seed)
        self.size = self._targets.size
        self.notice = ""
        self.engines: list[_Engine] = []
        self._key = random.getrandbits(61)
        self._bucket = TokenBucket(self.rate, burst=64)
        # key -> reason: up hosts and hosts reported unreachable. The only per-host state.
        self._answered: dict[int, object] = {}
        self._up = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._max_rtt = 0.0
        self._srtt = 0.0
        self._rttvar = 0.0
        self._samples = 0
        self._last_answer = 0.0
        self._pass = 0
        self._progress = [0]
        self._error: BaseException | None = None
        self.started = 0.0
        self.elapsed = 0.0
        self._used = False
        self.cancelled = False
        self._link: LinkTx | None = None
        self._frames: _FrameSender | None = None
        self._adaptive = retries is None
        self._loss_decision: bool | None = True
        self._loss_engine: EchoEngine | None = None
        #: (loss probes sent, lost) when the default adaptive retry measured the path
        self.loss_measured: tuple[int, int] | None = None
        #: how long each pass took to send (seconds)
        self.pass_seconds: list[float] = []

    # -- method selection ---------------------------------------------------------------------

    def _build_engines(self) -> None:
        fams = self._targets.families or {4}
        raw = can_open_raw()
        want_icmp = self.method in ("auto", "icmp")
        want_tcp = self.method in ("auto", "tcp")
        engines: list[_Engine] = []
        missing: list[str] = []
        try:
            if want_icmp:
                if raw or ping_group_allows() or 6 in fams:
                    try:
                        engines.append(_IcmpEngine(self._key, self._bucket, self._record, fams))
                    except PrivilegeError:
                        if self.method == "icmp":
                            raise
                        missing.append("ICMP echo (needs root, or net.ipv4.ping_group_range)")
                elif self.method == "icmp":
                    # Let the socket layer produce the precise error (names the sysctl fix).
                    engines.append(_IcmpEngine(self._key, self._bucket, self._record, fams))
                else:
                    missing.append(
                        "ICMP echo (needs root, or sysctl net.ipv4.ping_group_range covering "
                        "your group)"
                    )
            if want_tcp:
                if raw:
                    engines.append(_RawTcpEngine(self._bucket, self._record, fams))
                else:
                    engines.append(
                        _ConnectEngine(self._bucket, self._record, self.threads, self._wait)
                    )
                    if self.method == "auto":
                        missing.append("raw TCP SYN/ACK probes (need root)")
        except BaseException:
            for e in engines:
                e.close()
            raise
        self.engines = engines
        if raw and 4 in fams:
            self._attach_link()
        used = " + ".join(e.name for e in engines)
        note = f"sweep: using {used}"
        if missing:
            note += "; not privileged, so without " + ", ".join(missing)
        self.notice = note
        if self.on_notice is not None:
            self.on_notice(note)

    def _attach_link(self) -> None:
        """Give the raw engines an Ethernet-frame transmitter when the targets sit behind a
        gateway (the common routed case); otherwise they keep their IP sockets."""
        first = next((a for fam, a, _ in self._targets.ranges() if fam == 4), None)
        if first is None:
            return
        icmp = next((e for e in self.engines if isinstance(e, _IcmpEngine)), None)
        tcpe = next((e for e in self.engines if isinstance(e, _RawTcpEngine)), None)

        def resolve() -> None:
            # One ordinary packet makes the kernel resolve the gateway's MAC (ARP). It goes to
            # the first target, which is probed anyway; its answer is validated as usual.
            dest = socket.inet_ntoa(first.to_bytes(4, "big"))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(b"", (dest, 9))

        link = LinkTx.for_route(first, resolve=resolve)
        if link is None:
            return
        self._link = link
        if icmp is not None and not icmp.raw:
            icmp = None  # a datagram ICMP socket cannot be bypassed: it keeps its own pass
        if icmp is not None or tcpe is not None:
            parts = min(_MAX_SENDERS, len(os.sched_getaffinity(0)))
            self._frames = _FrameSender(link, icmp, tcpe, self.rate, parts)

    # -- results ------------------------------------------------------------------------------

    def _record(self, key: int, reason: str, rtt_ms: float | None) -> None:
        """Called from receiver threads for every validated answer."""
        up = reason in _UP_REASONS
        with self._lock:
            prev = self._answered.get(key)
            if prev is not None and (prev in _UP_REASONS or not up):
                return
            self._answered[key] = reason
            if not up:
                return  # reported with the other down hosts at the end (if asked for)
            self._up += 1
            self._last_answer = time.monotonic()
            if rtt_ms is not None:
                # Smoothed RTT and variation, as TCP (RFC 6298) and nmap estimate timeouts:
                # robust to the odd sample delayed by our own busy threads.
                if self._samples == 0:
                    self._srtt, self._rttvar = rtt_ms, rtt_ms / 2
                else:
                    self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt_ms)
                    self._srtt = 0.875 * self._srtt + 0.125 * rtt_ms
                self._samples += 1
                if rtt_ms > self._max_rtt:
                    self._max_rtt = rtt_ms
        host = _host_str(key)
        self._queue.put(
            HostResult(
                host,
                "up",
                reason,
                None if rtt_ms is None else round(rtt_ms, 3),
                self._space.hostname(host) if self._space is not None else None,
            )
        )

    def _wait(self) -> float:
        """How long to wait for answers after a probe (seconds), adapting to what came back:
        nmap's srtt + 4 x rttvar (and at least 2 x srtt), within [MIN_WAIT, DEFAULT_TIMEOUT]."""
        if self.timeout is not None:
            return self.timeout
        if not self._samples:
            return DEFAULT_TIMEOUT
        ms = max(self._srtt + 4.0 * self._rttvar, 2.0 * self._srtt)
        return min(DEFAULT_TIMEOUT, max(MIN_WAIT, ms / 1000.0))

    # -- running ------------------------------------------------------------------------------

    def _all_answered(self) -> bool:
        return len(self._answered) >= self.size

    def _run(self) -> None:
        try:
            for e in self.engines:
                e.start()
            passes = self.retries + 1
            last_send = last_pass_start = time.monotonic()
            for p in range(passes):
                if self._stop.is_set() or self._all_answered():
                    break
                if p > 0:
                    # A retry goes no sooner than one wait after the previous pass began, so
                    # answers still on their way are not asked for twice.
                    self._sleep_until(functools.partial(self._deadline, last_pass_start))
                    if p == 1 and self._loss_decision is None:
                        # The loss probes went out when the first pass ended: their answers
                        # are due within one wait.
                        self._sleep_until(functools.partial(self._deadline, last_send))
                    if p == 1 and not self._retry_needed():
                        break
                self._pass = p + 1
                last_pass_start = time.monotonic()
                self._run_pass()
                last_send = time.monotonic()
                self.pass_seconds.append(last_send - last_pass_start)
                if p == 0 and passes > 1 and self._adaptive:
                    self._probe_loss()
            # One wait after the last send, ending early once every target has answered.
            self._sleep_until(functools.partial(self._deadline, last_send))
        except BaseException as exc:
            self._error = exc
        finally:
            self._stop.set()
            # The results are complete: let the iterator finish now, and close the engines
            # (their receiver threads take up to one poll interval to stop) after that.
            self._queue.put(_DONE)
            for e in self.engines:
                with contextlib.suppress(Exception):  # nothing is left to report it to
                    e.close()
            if self._link is not None:
                self._link.close()

    def _deadline(self, since: float) -> float:
        return since + self._wait()

    def _sleep_until(self, when: Callable[[], float]) -> None:
        while not self._stop.is_set() and not self._all_answered():
            left = when() - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 0.02))

    # -- adaptive retries ---------------------------------------------------------------------

    def _probe_loss(self) -> None:
        """After the first pass of a default-retries sweep, measure the path's loss.

        A retry pass costs as much as the first pass, and on a path that loses nothing it
        cannot find anything: every live host already had its probes (three per address when
        privileged). So, as nmap adapts its retransmissions to the drops it observes, extra echo
        requests go to hosts that answered one (at least 256 in all, several rounds for few
        hosts); the retry pass runs unless every one of them is answered. Their answers arrive
        within the wait the first pass needs anyway, so measuring costs no time; with fewer than
        8 hosts answering echo there is nothing to measure with and the retry always runs.
        """
        self._loss_decision = True  # default: retry
        icmp = next((e for e in self.engines if isinstance(e, _IcmpEngine)), None)
        if icmp is None:
            return
        with self._lock:
            hosts = [k for k, r in self._answered.items() if r == "echo-reply"][:_LOSS_HOSTS]
        if len(hosts) < _LOSS_MIN_HOSTS:
            return
        rounds = max(1, min(8, -(-_LOSS_PROBES // len(hosts))))
        icmp.engine.send_loss_probes(hosts, rounds)
        self._loss_engine = icmp.engine
        self._loss_decision = None  # decided when the answers are in (_retry_needed)

    def _retry_needed(self) -> bool:
        if not self._adaptive or self._loss_decision is not None:
            return self._loss_decision is not False
        eng = self._loss_engine
        assert eng is not None
        # An answer still in a queue (a receiver thread starved by a busy machine) is not a
        # loss: give the stragglers one more wait before calling them lost. Costs time only
        # when something is missing, i.e. when the retry pass is likely anyway.
        deadline = time.monotonic() + self._wait()
        while (
            eng.loss_sent > eng.loss_replies
            and time.monotonic() < deadline
            and not self._stop.is_set()
        ):
            self._stop.wait(0.01)
        lost = eng.loss_sent - eng.loss_replies
        self.loss_measured = (eng.loss_sent, lost)
        return lost > 0

    # -- sending ------------------------------------------------------------------------------

    def _run_pass(self) -> None:
        skip = self._answered
        frames = self._frames
        link = self._link
        jobs: list[Callable[[], object]] = []
        if frames is not None and link is not None:

            def l2() -> Iterator[Range]:
                for r in self._targets.ranges():
                    if r[0] == 4 and link.covers_range(r[1], r[2]):
                        yield r

            def rest() -> Iterator[Range]:
                for r in self._targets.ranges():
                    if not (r[0] == 4 and link.covers_range(r[1], r[2])):
                        yield r

            jobs.append(
                functools.partial(
                    frames.run_pass, l2, skip, self._stop, self.size, self._targets.block_count()
                )
            )
            for e in self.engines:
                # What the frames cover is theirs; the engine gets the rest (IPv6, on-link).
                covered = e is frames.icmp or e is frames.tcpe
                ranges = rest() if covered else self._targets.ranges()
                jobs.append(functools.partial(e.run_pass, ranges, skip, self._stop))
        else:
            for e in self.engines:
                jobs.append(functools.partial(e.run_pass, self._targets.ranges(), skip, self._stop))
        if len(jobs) == 1:
            jobs[0]()
            return
        errors: list[BaseException] = []

        def run(job: Callable[[], object]) -> None:
            try:
                job()
            except BaseException as exc:
                errors.append(exc)
                self._stop.set()

        threads = [
            threading.Thread(target=run, args=(job,), name=f"hilos-send-{i}", daemon=True)
            for i, job in enumerate(jobs)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]

    def cancel(self) -> None:
        """Stop sending and waiting; the iterator ends after what was already found (down
        hosts are not listed: most addresses of a cancelled sweep were never probed)."""
        self.cancelled = True
        self._stop.set()

    def drain(self) -> list[HostResult]:
        """Results found but not yet yielded (after `cancel`, e.g. on Ctrl-C)."""
        found: list[HostResult] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return found
            if isinstance(item, HostResult):
                found.append(item)

    @property
    def up(self) -> int:
        return self._up

    @property
    def probed(self) -> int:
        """Addresses probed so far (at least once): the whole space once the first pass ended,
        less when cancelled during it. For summaries; never the size of an unfinished space."""
        if self._pass > 1 or (self._stop.is_set() and not self.cancelled and self._error is None):
            return self.size
        return self._progress_now().done

    def __iter__(self) -> Generator[HostResult, None, None]:
        if self._used:
            raise RuntimeError("a Sweeper runs once; make a new one")
        self._used = True
        self.started = time.monotonic()
        self._build_engines()
        runner = threading.Thread(target=self._run, name="hilos-sweep", daemon=True)
        runner.start()
        next_progress = 0.0
        finished = False
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    item = None
                if item is _DONE:
                    break
                if isinstance(item, HostResult):
                    yield item
                if self.on_progress is not None:
                    now = time.monotonic()
                    if now >= next_progress:
                        next_progress = now + 0.1
                        self.on_progress(self._progress_now())
            finished = True
            if self._error is not None:
                raise self._error
            if self.all_hosts and not self.cancelled:
                answered = self._answered
                for key in self._targets.iter_keys():
                    reason = answered.get(key)
                    if reason in _UP_REASONS:
                        continue
                    host = _host_str(key)
                    yield HostResult(
                        host,
                        "down",
                        str(reason) if reason else "no-response",
                        None,
                        self._space.hostname(host) if self._space is not None else None,
                    )
        finally:
            self._stop.set()
            if not finished:
                # Cancelled or failed mid-pass: wait for the senders (a forked one is stopped
                # there) before handing control back.
                runner.join(timeout=5.0)
            self.elapsed = time.monotonic() - self.started

    def _progress_now(self) -> SweepProgress:
        done = len(self._answered)
        if self._frames is not None:
            done = max(done, self._frames.progress)
        for e in self.engines:
            if isinstance(e, _IcmpEngine):
                done = max(done, e.engine.progress)
        return SweepProgress(
            done=min(done, self.size),
            total=self.size,
            up=self._up,
            pass_no=self._pass,
            passes=self.retries + 1,
            elapsed=time.monotonic() - self.started,
        )


def sweep(
    targets: TargetSpace | Iterable[Address],
    *,
    method: Method = "auto",
    rate: float | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    threads: int | None = None,
    randomize: bool = False,
    seed: int | None = None,
    all_hosts: bool = False,
    on_progress: Callable[[SweepProgress], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
) -> Iterator[HostResult]:
    """Sweep `targets` and yield a HostResult per up host as it answers (see Sweeper).

    `targets` is a TargetSpace, one spec (``"127.0.0.1"``, ``"127.0.0.0/30"``, ``"localhost"``,
    an int) or an iterable of them. Every argument is checked before anything is sent, as the
    CLI checks it: bad values raise InvalidArgument, bad targets TargetError, names that do not
    resolve ResolveError (all HilosError subclasses; see hilos.validate).

    for r in sweep(["127.0.0.1", "::1"], method="icmp", timeout=0.5):
        print(r.host, r.reason, r.rtt_ms)
    """
    from hilos import validate
    from hilos.errors import InvalidArgument

    if method not in ("auto", "icmp", "tcp"):
        raise InvalidArgument(f"method must be auto, icmp or tcp, not {method!r}")
    hosts = validate.check_hosts(targets)
    sweeper = Sweeper(
        hosts,
        method=method,
        rate=validate.check_rate(rate),
        timeout=validate.check_timeout(timeout),
        retries=validate.check_retries(retries),
        threads=validate.check_threads(threads),
        randomize=bool(randomize),
        seed=validate.check_seed(seed),
        all_hosts=all_hosts,
        on_progress=on_progress,
        on_notice=on_notice,
    )
    return validate.with_hostnames(iter(sweeper), hosts)
