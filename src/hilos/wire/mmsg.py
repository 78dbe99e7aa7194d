"""The C structures of sendmmsg(2)/recvmmsg(2) (struct iovec, msghdr, mmsghdr), for ctypes: one
definition for the batched sender (wire.batch) and receiver (wire.rx)."""

from __future__ import annotations

import ctypes

__all__ = ["Iovec", "Mmsghdr", "Msghdr"]


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
