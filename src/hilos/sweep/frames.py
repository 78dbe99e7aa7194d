"""The privileged IPv4 fast path: echo, SYN 443 and ACK 80 of each address as Ethernet frames."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from hilos.probes.base import send_tick
from hilos.sweep.base import PACE_BATCH, Range
from hilos.sweep.engines import IcmpDiscovery, TcpDiscovery
from hilos.wire.batch import Batch
from hilos.wire.cookie import M1, M2, M3, MASK64
from hilos.wire.frames import ECHO_PAD, SynTemplate4
from hilos.wire.link import LinkTx
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.senders import Claims, run_forked

__all__ = ["MAX_SENDERS", "FrameSender", "claimed_blocks"]

# An IPv4 TCP probe as an Ethernet frame: eth + IP bytes 0-9, IP checksum, source, destination,
# sport, dport, seq, ack, offset/flags + window, TCP checksum, urgent pointer + MSS option.
_TCP_FRAME = struct.Struct("!24sH4sIHHII4sH6s")
# An ICMP echo as an Ethernet frame (the layout of hilos.wire.frames' ECHO).
_ICMP_FRAME = struct.Struct("!24sH4sIBBHIQI12s")
# Echo, SYN and ACK of one address in three consecutive 66-byte slots, for one pack_into.
_ALL_FRAMES = struct.Struct("!24sH4sIBBHIQI12s" + "24sH4sIHHII4sH6s8x" + "24sH4sIHHII4sH6s8x")
_ECHO_LEN = 20 + len(ECHO_PAD)  # ICMP header 8 + send time 8 + cookie 4 + padding
MAX_SENDERS = 2  # sender processes for the frame path (the kernel work is what they share)
_SLOT = 66  # bytes per frame slot in a send batch (the echo frame is the longest)
_BATCH_ADDRS = 64  # addresses per sendmmsg batch (up to 192 frames)
_FORK_MIN = 4096  # addresses in a pass before a second sender process pays for its fork
_SYN_KEY, _ACK_KEY = 443 << 16, 80 << 16  # the cookie's port words (Cookie.value)

# The constants of the echo frames, the TCP cookie and the TCP frames (FrameSender._echo_consts,
# _cookie_consts, _tcp_consts): hoisted once per pass so the per-address loops read locals only.
_Echo = tuple[int, int, bytes, int, int, bytes]
_Cookie = tuple[int, int, int, int, int, int, Callable[[], int]]
_Tcp = tuple[bytes, int, int, int, bytes, bytes, bytes]


def claimed_blocks(
    ranges: Iterable[Range], stop: threading.Event, claims: Claims | None
) -> Iterator[tuple[int, int]]:
    """The (first, last) blocks of `ranges` (a range's part inside one /24) this process
    claimed, numbered in walk order (all of them without `claims`); ends early on `stop`."""
    nth = 0  # block number, for the split between processes
    lo, hi = (0, 1 << 62) if claims is None else claims.next()
    if lo >= hi:
        return
    for _fam, first, last in ranges:
        a = first
        while a <= last:
            block_end = min(last, a | 0xFF)
            if nth >= hi:  # past our chunk: claim the next free one (always ahead)
                if claims is None:
                    return
                claims.finish(lo)  # a resumed sweep starts after the chunks done (Claims)
                lo, hi = claims.next()
                if lo >= hi:
                    return  # none left: the other senders have the rest
            mine = nth >= lo
            nth += 1
            if stop.is_set():
                return
            if mine:
                yield a, block_end
            a = block_end + 1
    if claims is not None and nth > lo:
        claims.finish(lo)  # the walk ended inside our last chunk


class FrameSender:
    """Privileged IPv4 fast path: every probe of an address (echo, SYN 443, ACK 80) built as an
    Ethernet frame in one loop and sent on the LinkTx socket; the engines' receivers validate
    the answers as usual. On multi-core machines forked children send some of the /24 blocks
    (hilos.wire.senders.run_forked), so the kernel's per-packet work (most of a probe's cost)
    runs on every core without the GIL. With both engines they must share one Cookie (the
    sweep's): the echo and TCP cookies of an address come from one seed.
    """

    def __init__(
        self,
        link: LinkTx,
        icmp: IcmpDiscovery | None,
        tcpe: TcpDiscovery | None,
        rate: float | None,
        parts: int,
    ) -> None:
        if icmp is not None and tcpe is not None:
            a, b = icmp.engine.cookie, tcpe.cookie
            if (a.k1, a.k2) != (b.k1, b.k2):
                raise ValueError("the echo and TCP engines of a frame sender share one Cookie")
        self.link = link
        self.icmp = icmp
        self.tcpe = tcpe
        self.rate = rate
        self.parts = max(1, parts)
        self.bucket = TokenBucket(rate, burst=64)
        self.progress = 0  # addresses handled in the current pass (estimated across senders)
        self.claims: Claims | None = None  # the pass in progress's (how far it got: Claims)

    def run_pass(
        self,
        ranges: Callable[[], Iterable[Range]],
        skip: dict[int, object],
        stop: threading.Event,
        todo: int,
        blocks: int,
        at: tuple[int, int] = (0, 0),
    ) -> int:
        """Send one pass over `ranges()` (called in each sender process). `todo` is the number
        of addresses (is a second process worth its fork?), `blocks` how many blocks `ranges()`
        makes (a block: the part of a range inside one /24); `at`: (pass number, chunks of
        this pass sent before: a resumed sweep's)."""
        parts = self.parts if todo >= _FORK_MIN else 1
        self.progress = 0
        self.claims = claims = Claims(blocks, at[1], tag=at[0])
        if parts == 1:
            try:
                return self.send(ranges(), skip, stop, claims, 1, self.bucket)
            finally:
                claims.close()
        share = None if self.rate is None else self.rate / parts

        def work(claims: Claims, stop_: threading.Event) -> int:
            return self.send(ranges(), skip, stop_, claims, parts, TokenBucket(share, 64))

        return run_forked(work, parts, claims, stop, "sweep sender")

    def send(
        self,
        ranges: Iterable[Range],
        skip: dict[int, object],
        stop: threading.Event,
        claims: Claims | None,
        parts: int,
        bucket: TokenBucket,
    ) -> int:
        """Send the frames of every block this process claims (all of them without `claims`).

        The hot loop of a privileged sweep. Going through Cookie.host_seed/value/echo and
        SynTemplate4.syn/ack costs ~11 us of Python per address (profiled); here the same
        splitmix64 cookie arithmetic and the same 44-byte probes (plus the IP checksum the
        kernel fills for IP_HDRINCL) are inlined into one struct.pack per frame, ~3 us for all
        three probes. tests/test_sweep_frames.py checks these frames against SynTemplate4 and
        that the engines' receivers accept their answers. Frames are packed straight into one
        batch buffer (no bytes object per frame) and leave by sendmmsg: one system call and one
        GIL release per batch (the parent shares its GIL with the receiver threads).
        """
        blocks = claimed_blocks(ranges, stop, claims)
        lens = ([_ICMP_FRAME.size] if self.icmp else []) + [_TCP_FRAME.size] * (
            2 if self.tcpe else 0
        )
        batch = Batch(self.link.sock, lens * _BATCH_ADDRS, _SLOT)
        if self.icmp is not None and self.tcpe is not None:
            return self._send_all(blocks, skip, batch, bucket, parts)
        if self.icmp is not None:
            return self._send_echo(blocks, skip, batch, bucket, parts)
        return self._send_tcp(blocks, skip, batch, bucket, parts)

    def _echo_consts(self) -> _Echo:
        """The echo cookie's keys (Cookie.echo), the frames' Ethernet + IP head, IP and ICMP
        checksum bases, pad."""
        assert self.icmp is not None
        ihead, ip_base_i = self.link.ip_prefix(socket.IPPROTO_ICMP, 20 + _ECHO_LEN)
        ibase = ((8 << 8) + int.from_bytes(ECHO_PAD, "big")) % 0xFFFF
        cookie = self.icmp.engine.cookie
        return cookie.k1, cookie.k2, ihead, ip_base_i, ibase, ECHO_PAD

    def _cookie_consts(self) -> _Cookie:
        """The TCP cookie's keys and splitmix64 constants (hilos.wire.cookie's Cookie), and the
        send tick that makes the source port."""
        assert self.tcpe is not None
        cookie = self.tcpe.cookie
        return cookie.k1, cookie.k2, M1, M2, M3, MASK64, send_tick

    def _tcp_consts(self) -> _Tcp:
        """The TCP frames' head, checksum bases and words (SynTemplate4's probes)."""
        template = SynTemplate4(ipaddress.IPv4Address(self.link.source))
        ip_base_t = int.from_bytes(template.prefix, "big") % 0xFFFF
        wf_syn, wf_ack = template.win_flags_syn, template.win_flags_ack
        syn_base = (template.const + int.from_bytes(wf_syn[:2], "big") + 443) % 0xFFFF
        ack_base = (template.const + int.from_bytes(wf_ack[:2], "big") + 80) % 0xFFFF
        thead = self.link.eth + template.prefix[:10]
        return thead, ip_base_t, syn_base, ack_base, wf_syn, wf_ack, template.suffix

    def _send_all(
        self,
        blocks: Iterator[tuple[int, int]],
        skip: dict[int, object],
        batch: Batch,
        bucket: TokenBucket,
        parts: int,
    ) -> int:
        """Echo, SYN and ACK of every address, all three in one pack_into (slots are
        contiguous): a third of the call overhead of packing each. The three cookies share the
        address's seed (one Cookie, checked in __init__)."""
        link = self.link
        src4 = link.source.to_bytes(4, "big")
        take = bucket.take
        limited = not bucket.unlimited
        now_ns = time.monotonic_ns
        _k1, _k2, ihead, ip_base_i, ibase, pad = self._echo_consts()
        k1, k2, m1, m2, m3, mask, tick = self._cookie_consts()
        thead, ip_base_t, syn_base, ack_base, wf_syn, wf_ack, suffix = self._tcp_consts()
        syn_key, ack_key = _SYN_KEY, _ACK_KEY
        sport = tick()
        buf = batch.buf
        apack = _ALL_FRAMES.pack_into
        flush = batch.flush
        slot = _SLOT
        slot3 = 3 * _SLOT
        off = 0
        end = batch.size
        sent = pending = 0
        for a, block_end in blocks:
            self.progress += (block_end - a + 1) * parts  # the other senders keep pace
            for b in range(a, block_end + 1):
                if b in skip:
                    continue
                if limited:
                    pending += 3
                    if pending >= PACE_BATCH:
                        take(pending)
                        pending = 0
                x = ((b ^ k1) * m1) & mask
                x ^= x >> 31
                x = ((x ^ k2) * m2) & mask
                seed = x ^ (x >> 29)
                y = (seed * m3) & mask  # Cookie.echo: value(seed, 0, 0)
                y ^= y >> 32
                c = ((y * m1) & mask) >> 32
                t = now_ns()
                if not b & 15:
                    # The source port carries the send time in 262 us ticks (the engine's
                    # RTT); 16 addresses take well under one tick to build.
                    sport = tick()
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
                    sent += flush(off // slot)
                    off = 0
        if off:
            sent += flush(off // slot)
        return sent

    def _send_echo(
        self,
        blocks: Iterator[tuple[int, int]],
        skip: dict[int, object],
        batch: Batch,
        bucket: TokenBucket,
        parts: int,
    ) -> int:
        """The echo frame of every address (a sweep with method icmp)."""
        src4 = self.link.source.to_bytes(4, "big")
        take = bucket.take
        limited = not bucket.unlimited
        now_ns = time.monotonic_ns
        k1, k2, ihead, ip_base_i, ibase, pad = self._echo_consts()
        m1, m2, m3, mask = M1, M2, M3, MASK64
        buf = batch.buf
        ipack = _ICMP_FRAME.pack_into
        flush = batch.flush
        slot = _SLOT
        off = 0
        end = batch.size
        sent = pending = 0
        for a, block_end in blocks:
            self.progress += (block_end - a + 1) * parts  # the other senders keep pace
            for b in range(a, block_end + 1):
                if b in skip:
                    continue
                if limited:
                    pending += 1
                    if pending >= PACE_BATCH:
                        take(pending)
                        pending = 0
                x = ((b ^ k1) * m1) & mask  # Cookie.echo(b), inlined
                x ^= x >> 31
                x = ((x ^ k2) * m2) & mask
                x = ((x ^ (x >> 29)) * m3) & mask
                x ^= x >> 32
                c = ((x * m1) & mask) >> 32
                t = now_ns()
                ipack(
                    buf, off, ihead, 0xFFFF - (ip_base_i + b) % 0xFFFF, src4, b,
                    8, 0, 0xFFFF - (ibase + c + c + t) % 0xFFFF, c, t, c, pad,
                )  # fmt: skip
                off += slot
                if off >= end:
                    sent += flush(off // slot)
                    off = 0
        if off:
            sent += flush(off // slot)
        return sent

    def _send_tcp(
        self,
        blocks: Iterator[tuple[int, int]],
        skip: dict[int, object],
        batch: Batch,
        bucket: TokenBucket,
        parts: int,
    ) -> int:
        """The SYN and ACK frames of every address (a sweep with method tcp)."""
        src4 = self.link.source.to_bytes(4, "big")
        take = bucket.take
        limited = not bucket.unlimited
        k1, k2, m1, m2, m3, mask, tick = self._cookie_consts()
        thead, ip_base_t, syn_base, ack_base, wf_syn, wf_ack, suffix = self._tcp_consts()
        syn_key, ack_key = _SYN_KEY, _ACK_KEY
        sport = tick()
        buf = batch.buf
        tpack = _TCP_FRAME.pack_into
        flush = batch.flush
        slot = _SLOT
        off = 0
        end = batch.size
        sent = pending = 0
        for a, block_end in blocks:
            self.progress += (block_end - a + 1) * parts  # the other senders keep pace
            for b in range(a, block_end + 1):
                if b in skip:
                    continue
                if limited:
                    pending += 2
                    if pending >= PACE_BATCH:
                        take(pending)
                        pending = 0
                x = ((b ^ k1) * m1) & mask
                x ^= x >> 31
                x = ((x ^ k2) * m2) & mask
                seed = x ^ (x >> 29)
                if not b & 15:
                    sport = tick()  # the send time, see _send_all
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
                    sent += flush(off // slot)
                    off = 0
        if off:
            sent += flush(off // slot)
        return sent
