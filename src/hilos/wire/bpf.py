"""Classic BPF in the kernel: a filter program assembled here, attached with SO_ATTACH_FILTER,
so that only replies to our own probes reach user space (every other packet the raw socket
would see, our own requests looping back on lo included, is dropped before the copy)."""

from __future__ import annotations

import ctypes
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["Insn", "Program", "attach", "reply_filter"]

SO_ATTACH_FILTER: Final = 26

# Opcodes (linux/filter.h, linux/bpf_common.h).
_LD, _LDX, _JMP, _RET = 0x00, 0x01, 0x05, 0x06
_W, _H, _B = 0x00, 0x08, 0x10
_ABS, _IND, _MSH = 0x20, 0x40, 0xA0
_JA, _JEQ, _JGT, _JGE, _JSET = 0x00, 0x10, 0x20, 0x30, 0x40
_K = 0x00

_SIZES: Final = {4: _W, 2: _H, 1: _B}


@dataclass(frozen=True)
class Insn:
    """One instruction; jumps name their targets by label (resolved by Program.assemble)."""

    code: int
    k: int = 0
    jt: str | None = None
    jf: str | None = None
    label: str | None = None  # the label this instruction carries


class Program:
    """A classic BPF program under construction: loads, compares that jump to labels, returns.

    p = Program()
    p.load(9, 1); p.jeq(6, "tcp", "drop")
    p.ret(0, label="drop"); p.ret(0xFFFF, label="tcp")
    """

    def __init__(self) -> None:
        self.insns: list[Insn] = []
        self._next_label: str | None = None

    def here(self, label: str) -> None:
        """Attach `label` to the next instruction."""
        self._next_label = label

    def _add(self, code: int, k: int = 0, jt: str | None = None, jf: str | None = None) -> None:
        self.insns.append(Insn(code, k & 0xFFFFFFFF, jt, jf, self._next_label))
        self._next_label = None

    def load(self, offset: int, size: int, *, indexed: bool = False) -> None:
        """A = the big-endian `size`-byte number at `offset` (plus X if `indexed`)."""
        self._add(_LD | _SIZES[size] | (_IND if indexed else _ABS), offset)

    def load_ihl(self, offset: int) -> None:
        """X = 4 * (byte at `offset` & 0xF): the IPv4 header length."""
        self._add(_LDX | _B | _MSH, offset)

    def jeq(self, k: int, jt: str | None, jf: str | None) -> None:
        self._add(_JMP | _JEQ | _K, k, jt, jf)

    def jge(self, k: int, jt: str | None, jf: str | None) -> None:
        self._add(_JMP | _JGE | _K, k, jt, jf)

    def jgt(self, k: int, jt: str | None, jf: str | None) -> None:
        self._add(_JMP | _JGT | _K, k, jt, jf)

    def jset(self, k: int, jt: str | None, jf: str | None) -> None:
        self._add(_JMP | _JSET | _K, k, jt, jf)

    def ja(self, target: str) -> None:
        """Jump to `target` always (the offset rides in k)."""
        self._add(_JMP | _JA, 0, target, None)

    def ret(self, k: int, *, label: str | None = None) -> None:
        if label is not None:
            self.here(label)
        self._add(_RET | _K, k)

    def assemble(self) -> bytes:
        """The program as struct sock_filter records (jumps are forward only, as BPF wants;
        None means the next instruction)."""
        where = {ins.label: i for i, ins in enumerate(self.insns) if ins.label is not None}
        out = bytearray()
        for i, ins in enumerate(self.insns):
            jt = where[ins.jt] - i - 1 if ins.jt is not None else 0
            jf = where[ins.jf] - i - 1 if ins.jf is not None else 0
            k = ins.k
            if ins.code == _JMP | _JA:
                k, jt = jt, 0
            if not (0 <= jt < 256 and 0 <= jf < 256 and k >= 0):
                raise ValueError(f"jump out of range at instruction {i}")
            out += struct.pack("=HBBI", ins.code, jt, jf, k)
        return bytes(out)


def reply_filter(
    dst: int,
    *,
    icmp_types: Sequence[int] = (),
    tcp_ports: tuple[int, int] | None = None,
    udp_ports: tuple[int, int] | None = None,
    link: int = 0,
    snap: int = 0xFFFF,
) -> Program:
    """Accept IPv4 packets to `dst` that are ICMP of `icmp_types`, or unfragmented TCP/UDP to a
    destination port in the inclusive range `tcp_ports`/`udp_ports`; drop everything else.
    `link` is where the IP header starts (0 on a raw IP socket, 14 on an Ethernet AF_PACKET
    socket); accepted packets are cut to `snap` bytes."""
    p = Program()
    if link:
        p.load(link - 2, 2)
        p.jeq(0x0800, None, "drop")
    p.load(link + 16, 4)
    p.jeq(dst, None, "drop")
    p.load(link + 9, 1)
    p.jeq(socket.IPPROTO_ICMP, "icmp", None)
    p.jeq(socket.IPPROTO_TCP, "tcp", None)
    p.jeq(socket.IPPROTO_UDP, "udp", "drop")
    p.here("icmp")
    p.load_ihl(link)
    p.load(link, 1, indexed=True)
    for t in icmp_types:
        p.jeq(t, "accept", None)
    p.ja("drop")
    for name, ports in (("tcp", tcp_ports), ("udp", udp_ports)):
        p.here(name)
        if ports is None:
            p.ja("drop")
            continue
        p.load(link + 6, 2)
        p.jset(0x3FFF, "drop", None)  # MF or an offset: a fragment
        p.load_ihl(link)
        p.load(link + 2, 2, indexed=True)
        p.jge(ports[0], None, "drop")
        p.jgt(ports[1], "drop", "accept")
    p.ret(0, label="drop")
    p.ret(snap, label="accept")
    return p


class _Fprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def attach(sock: socket.socket, program: Program) -> None:
    """Attach `program` to `sock` (SO_ATTACH_FILTER); the kernel copies it."""
    code = program.assemble()
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = _Fprog(len(code) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
