"""Probe kinds for the batched engine (hilos.wire.vector): ICMP echo and TCP SYN/ACK over IPv4,
each a constant frame template, a numpy patch of the per-probe words, and a batch validator.

The frames are byte for byte those of the scalar builders (build_echo + an IPv4 header with
DF, as LinkTx.ip_prefix; build_tcp_segment + build_ipv4_packet) and the validators accept
exactly what hilos.probes.icmp_echo/tcp_reply accept for echo replies and TCP answers
(tests/test_probes_vector.py checks both on random inputs).
"""

from __future__ import annotations

import struct
import time
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from hilos.probes.base import KIND_RST, KIND_SYN_ACK, SPORT_BASE, SPORT_COUNT, send_tick
from hilos.wire.cookie import Cookie
from hilos.wire.frames import (
    ACK,
    ECHO_PAD,
    ECHO_SUM4,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    MSS,
    RST,
    SYN,
    TTL,
    WINDOW,
)
from hilos.wire.vector import U8, U16, U32, Answers, echo_cookies, fold, tcp_cookies

__all__ = ["KIND_ECHO", "EchoVector", "TcpVector", "ipv4_header"]

KIND_ECHO: Final = 0  # kind of an echo reply in Answers (the TCP kinds are hilos.probes.base's)

_u64 = np.uint64
_IP_HEAD = struct.Struct("!BBHHHBBH4s4s")
_ECHO_LEN: Final = 20 + 8 + 8 + 4 + len(ECHO_PAD)  # IP + ICMP header + time + cookie + pad
_TCP_LEN: Final = 20 + 24  # IP + TCP with the MSS option


def ipv4_header(proto: int, total_len: int, source: int, *, df: bool) -> bytes:
    """An IPv4 header (TTL 64, id 0) with checksum and destination left 0."""
    flags = 0x4000 if df else 0
    return _IP_HEAD.pack(
        0x45, 0, total_len, 0, flags, TTL, proto, 0, source.to_bytes(4, "big"), b"\0\0\0\0"
    )


def _layout(fields: list[tuple[str, str, int]], size: int) -> np.dtype[np.void]:
    names, formats, offsets = zip(*fields, strict=True)
    return np.dtype(
        {"names": list(names), "formats": list(formats), "offsets": list(offsets), "itemsize": size}
    )


_BIG: Final[dict[int, np.dtype[Any]]] = {
    1: np.dtype(">u1"),
    2: np.dtype(">u2"),
    4: np.dtype(">u4"),
    8: np.dtype(">u8"),
}


def _gather(pkts: U8, start: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.uint64]:
    """The big-endian number of `width` bytes at column start[i] of each row (columns past
    the end read as the last one)."""
    s0 = int(start[0]) if len(start) else 0
    if s0 + width <= pkts.shape[1] and bool((start == s0).all()):
        # Every row at the same column (replies without IP options): a slice, 10x faster.
        cells = np.ascontiguousarray(pkts[:, s0 : s0 + width]).view(_BIG[width])
        column: npt.NDArray[np.uint64] = cells.reshape(len(pkts)).astype(np.uint64)
        return column
    cols = np.clip(start[:, None] + np.arange(width), 0, pkts.shape[1] - 1)
    b = np.take_along_axis(pkts, cols, axis=1).astype(np.uint64)
    out = np.zeros(len(pkts), dtype=np.uint64)
    for k in range(width):
        out = (out << _u64(8)) | b[:, k]
    return out


def _ip_rows(
    pkts: U8, lens: npt.NDArray[np.int64], proto: int, need: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Rows that are IPv4 of `proto` with at least `need` bytes after the header, and each
    row's header length."""
    v = pkts[:, 0]
    ihl = (v & 15).astype(np.int64) * 4
    ok = (v >> 4 == 4) & (ihl >= 20) & (pkts[:, 9] == proto) & (lens >= ihl + need)
    return ok & (lens <= pkts.shape[1]), ihl


class EchoVector:
    """ICMP echo requests as Ethernet frames `eth` + IPv4 (DF) + hilos's echo (cookie, send time,
    cookie again, padding), keyed by the sweep's `cookie` (hilos.wire.cookie.Cookie.echo)."""

    def __init__(self, cookie: Cookie, eth: bytes, source: int) -> None:
        head = ipv4_header(1, _ECHO_LEN, source, df=True)
        icmp = struct.pack("!BBHIQI", ICMP_ECHO_REQUEST, 0, 0, 0, 0, 0) + ECHO_PAD
        self.cookie = cookie
        self.source = source
        self.template = eth + head + icmp
        e = len(eth)
        self.layout = _layout(
            [
                ("ipsum", ">u2", e + 10),
                ("dst", ">u4", e + 16),
                ("csum", ">u2", e + 22),
                ("cookie", ">u4", e + 24),
                ("sent", ">u8", e + 28),
                ("cookie2", ">u4", e + 36),
            ],
            len(self.template),
        )
        self._ip_base = _u64(int.from_bytes(head, "big") % 0xFFFF)  # source included

    def patch(self, rows: npt.NDArray[np.void], dst: U32, port: U16) -> None:
        d = dst.astype(np.uint64)
        c = echo_cookies(self.cookie, d).astype(np.uint64)
        t = time.monotonic_ns()  # one batch leaves at once: one send time
        rows["dst"] = dst
        rows["ipsum"] = fold(self._ip_base + d)
        rows["cookie"] = c
        rows["cookie2"] = c
        rows["sent"] = t
        rows["csum"] = fold(_u64(ECHO_SUM4 + t % 0xFFFF) + c + c)

    def validate(self, pkts: U8, lens: npt.NDArray[np.int64]) -> Answers:
        """Echo replies (IP header first) whose identifier/sequence is the cookie of their
        source address."""
        ok, ihl = _ip_rows(pkts, lens, 1, 20)
        rows = np.arange(len(pkts))
        col = np.clip(ihl, 0, pkts.shape[1] - 1)
        ok &= pkts[rows, col] == ICMP_ECHO_REPLY
        addr = _gather(pkts, np.full(len(pkts), 12), 4).astype(np.uint32)
        got = _gather(pkts, ihl + 4, 4)
        ok &= got == echo_cookies(self.cookie, addr).astype(np.uint64)
        sent = _gather(pkts, ihl + 8, 8)
        zero16 = np.zeros(len(pkts), dtype=np.uint16)
        kinds = np.full(len(pkts), KIND_ECHO, dtype=np.uint8)
        return Answers(ok, addr, zero16, kinds, sent)


class TcpVector:
    """TCP SYN (or ACK, `ack=True`) probes as frames `eth` + IPv4 + TCP with MSS, cookie in the
    sequence number (hilos.wire.cookie.Cookie), the send tick in the source port."""

    def __init__(
        self, cookie: Cookie, eth: bytes, source: int, *, ack: bool = False, df: bool = False
    ) -> None:
        head = ipv4_header(6, _TCP_LEN, source, df=df)  # df: LinkTx's frames set DF
        word = (6 << 12) | (ACK if ack else SYN)
        tcp = struct.pack("!HHIIHHHHBBH", 0, 0, 0, 0, word, WINDOW, 0, 0, 2, 4, MSS)
        self.cookie = cookie
        self.ack = ack
        self.template = eth + head + tcp
        e = len(eth)
        fields = [
            ("ipsum", ">u2", e + 10),
            ("dst", ">u4", e + 16),
            ("sport", ">u2", e + 20),
            ("dport", ">u2", e + 22),
            ("seq", ">u4", e + 24),
            ("ack", ">u4", e + 28),
            ("csum", ">u2", e + 36),
        ]
        self.layout = _layout(fields, len(self.template))
        self._ip_base = _u64(int.from_bytes(head, "big") % 0xFFFF)  # source included
        # Pseudo-header (source, protocol, TCP length) and the constant words of the header.
        self._tcp_base = _u64((source + 6 + 24 + word + WINDOW + 0x0204 + MSS) % 0xFFFF)
        self.sport: int | None = None  # fixed source port (tests); None: the send tick

    def patch(self, rows: npt.NDArray[np.void], dst: U32, port: U16) -> None:
        d = dst.astype(np.uint64)
        sport = send_tick() if self.sport is None else self.sport
        sports = np.full(len(dst), sport, dtype=np.uint64)
        c = tcp_cookies(self.cookie, d, port, sports).astype(np.uint64)
        rows["dst"] = dst
        rows["ipsum"] = fold(self._ip_base + d)
        rows["sport"] = sport
        rows["dport"] = port
        rows["seq"] = c
        total = self._tcp_base + d + port.astype(np.uint64) + _u64(sport) + c
        if self.ack:
            rows["ack"] = c
            total = total + c
        rows["csum"] = fold(total)

    def validate(self, pkts: U8, lens: npt.NDArray[np.int64]) -> Answers:
        """SYN-ACKs and RSTs (IP header first) acknowledging cookie + 1, or a bare RST whose seq
        is the cookie (hilos.probes.tcp_reply's rules)."""
        ok, ihl = _ip_rows(pkts, lens, 6, 14)
        ok &= ((pkts[:, 6] & 0x3F) == 0) & (pkts[:, 7] == 0)  # replies are never fragments
        addr = _gather(pkts, np.full(len(pkts), 12), 4).astype(np.uint32)
        port = _gather(pkts, ihl, 2)
        sport = _gather(pkts, ihl + 2, 2)
        seq = _gather(pkts, ihl + 4, 4)
        ackn = _gather(pkts, ihl + 8, 4)
        flags = _gather(pkts, ihl + 13, 1)
        ok &= ((sport - _u64(SPORT_BASE)) & _u64(0xFFFF)) < _u64(SPORT_COUNT)
        syn = (flags & _u64(SYN)) != 0
        rst = (flags & _u64(RST)) != 0
        has_ack = (flags & _u64(ACK)) != 0
        synack = syn & ((flags & _u64(ACK | RST)) == _u64(ACK))
        reset = ~syn & rst
        ok &= synack | reset
        expect = np.where(synack | has_ack, ackn - _u64(1), seq) & _u64(0xFFFFFFFF)
        ok &= expect == tcp_cookies(self.cookie, addr, port, sport).astype(np.uint64)
        kind = np.where(synack, KIND_SYN_ACK, KIND_RST).astype(np.uint8)
        zero = np.zeros(len(pkts), dtype=np.uint64)
        return Answers(ok, addr, port.astype(np.uint16), kind, zero)
