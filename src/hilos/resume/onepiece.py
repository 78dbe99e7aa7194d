"""The default checkpoint of a scan or sweep run in one piece: its job and the hosts written.

Every scan and sweep keeps one (unless --no-checkpoint). The run itself is unchanged: one
engine run, no chunks (each chunk paid an engine start and its last answers' wait again, which
doubled a short scan). Beside it the checkpoint holds what `--resume` needs: the options, the
targets (excludes applied, as address intervals), the names given, the seed and a hash of all
of these, then the hosts written so far (a bitmap over the IPv4 range, a set for IPv6) and each
output file's length holding exactly those hosts. It is rewritten atomically (temporary file,
fsync, rename) by a timer at most once a second, only when hosts were written, and at once on
a signal. A resumed run scans the targets minus the hosts written, cuts the outputs at those
lengths and appends: each host once, JSON Lines whole, XML closed once. With the hosts, a save
keeps the run's engine state when it has one (a SYN scan's: hilos.scanstate); the resumed run
then goes on where the scan stood, and sends again only what went out after the save. Without
one, hosts in flight (not written yet) are probed again.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hilos.errors import UsageError
from hilos.resume.atomic import write_atomically
from hilos.targets import TargetSpace
from hilos.targets.intervals import Interval, merge, subtract

__all__ = ["FORMAT", "HostLog", "RunCheckpoint", "is_run_checkpoint"]

FORMAT = "hilos-run-checkpoint/1"
#: Hosts written are a bitmap over the targets' IPv4 range up to this many addresses (32 MB
#: at most); a wider range keeps a set of the addresses written.
MAX_BITMAP = 1 << 28


class HostLog:
    """The hosts written, appended from the writing thread at the cost of a list append; the
    saving thread folds them into a bitmap over the IPv4 range (a set for IPv6, and for IPv4
    spans above MAX_BITMAP) when it saves."""

    def __init__(self, v4: Sequence[Interval]) -> None:
        self.base = v4[0][0] if v4 else 0
        span = v4[-1][1] - self.base + 1 if v4 else 0
        self.bits: bytearray | None = bytearray((span + 7) // 8) if span <= MAX_BITMAP else None
        self.v4: set[int] = set()  # without a bitmap
        self.v6: set[int] = set()
        self.new: list[str] = []
        self.count = 0

    def fold(self, upto: int) -> None:
        """Move the first `upto` addresses of `new` into the bitmap and sets."""
        fresh, base, bits = self.new[:upto], self.base, self.bits
        if bits is not None and len(fresh) >= 64 and "numpy" in sys.modules:
            # A SYN scan or dense sweep has numpy loaded: a burst of hosts (the end of a /16
            # -Pn scan: 65,536) costs half of the loop below, taken from the scan's own time.
            with contextlib.suppress(OSError):  # an IPv6 address among them: the loop
                _fold4(bits, b"".join(map(socket.inet_aton, fresh)), base)
                del self.new[:upto]
                self.count += len(fresh)
                return
        aton = socket.inet_aton
        for addr in fresh:
            try:
                ip = int.from_bytes(aton(addr), "big")
            except OSError:
                self.v6.add(int(ipaddress.ip_address(addr)))
                continue
            if bits is None:
                self.v4.add(ip)
            else:
                i = ip - base
                bits[i >> 3] |= 1 << (i & 7)
        del self.new[:upto]
        self.count += len(fresh)

    def has_many(self, addrs: Sequence[str]) -> list[bool]:
        """Whether each of `addrs` was written (folded or not yet)."""
        pending = set(self.new)
        bits, base = self.bits, self.base
        out = []
        for a in addrs:
            try:
                ip = int.from_bytes(socket.inet_aton(a), "big")
            except OSError:
                out.append(a in pending or int(ipaddress.ip_address(a)) in self.v6)
                continue
            i = ip - base
            if bits is not None and 0 <= i < len(bits) * 8:
                out.append(bool(bits[i >> 3] >> (i & 7) & 1) or a in pending)
            else:
                out.append(ip in self.v4 or a in pending)
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "v6": sorted(self.v6)}
        if self.bits is not None:
            packed = zlib.compress(bytes(self.bits), 1)
            out.update(base=self.base, bits=base64.b64encode(packed).decode("ascii"))
        else:
            out["v4"] = sorted(self.v4)
        return out

    def load(self, data: Mapping[str, Any]) -> None:
        self.count = int(data.get("count", 0))
        self.v6 = {int(x) for x in data.get("v6", ())}
        if "bits" in data:
            bits = zlib.decompress(base64.b64decode(data["bits"]))
            if self.bits is None or len(bits) != len(self.bits) or data["base"] != self.base:
                raise ValueError("the bitmap does not fit the targets")
            self.bits[:] = bits
        else:
            self.v4 = {int(x) for x in data.get("v4", ())}

    def intervals(self) -> tuple[list[Interval], list[Interval]]:
        """The addresses written, as merged intervals per family."""
        v4 = [(x, x) for x in self.v4]
        bits = self.bits
        if bits is not None:
            base, start = self.base, -1
            for byte_i, byte in enumerate(bits):
                if byte == 0xFF and start >= 0:
                    continue
                if byte == 0 and start < 0:
                    continue
                for bit in range(8):
                    i = byte_i * 8 + bit
                    if byte >> bit & 1:
                        if start < 0:
                            start = i
                    elif start >= 0:
                        v4.append((base + start, base + i - 1))
                        start = -1
            if start >= 0:
                v4.append((base + start, base + len(bits) * 8 - 1))
        return merge(v4), merge((x, x) for x in self.v6)


def _fold4(bits: bytearray, packed: bytes, base: int) -> None:
    """Set the bits of these IPv4 addresses (4 bytes each, network order) in `bits`."""
    import numpy as np

    idx = np.frombuffer(packed, dtype=">u4").astype(np.int64) - base
    view = np.frombuffer(bits, dtype=np.uint8)
    np.bitwise_or.at(view, idx >> 3, np.left_shift(1, idx & 7).astype(np.uint8))


class RunCheckpoint:
    """One run's checkpoint at `path` (see the module docstring). The writing thread calls
    `wrote()` holding `lock`, right after the outputs took the hosts; `save()` (the timer, a
    signal) reads the output files' lengths under the same lock, so the two always agree."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        kind: str,
        space: TargetSpace,
        options: Mapping[str, Any],
        seed: int | None = None,
        files: Sequence[str] = (),
    ) -> None:
        self.path = Path(path)
        self.kind = kind
        self.files = list(files)
        # Called under the lock before the outputs' lengths are read: writes may leave lines
        # buffered (a burst of results flushes once), and the lengths must hold every host
        # the log names.
        self.before_save: Callable[[], None] | None = None
        v4: list[Interval] = []
        v6: list[Interval] = []
        for first, last in space.iter_ranges():
            (v4 if first.version == 4 else v6).append((int(first), int(last)))
        self.v4, self.v6 = merge(v4), merge(v6)
        static = {
            "kind": kind,
            "options": dict(options),
            "seed": seed,
            "targets": {"v4": self.v4, "v6": self.v6},
            "names": {str(a): n for a, n in space.names.items()},
        }
        # The job never changes during a run: serialized once, not at every save.
        self._static = json.dumps(static, sort_keys=True, separators=(",", ":"))
        import hashlib  # here: its OpenSSL load is ~3 ms of every run's start otherwise

        self.digest = hashlib.sha256(self._static.encode()).hexdigest()
        self.options: dict[str, Any] = static["options"]  # type: ignore[assignment]
        self.seed = seed
        self.names: dict[str, str] = static["names"]  # type: ignore[assignment]
        self.log = HostLog(self.v4)
        self.offsets: dict[str, int] = {}
        self.space = space
        # The run's engine state (hilos.scanstate): `snapshot(written)` gives it at each save
        # (None: none to give); `engine` is a loaded checkpoint's.
        self.snapshot: Callable[[Callable[[Sequence[str]], list[bool]]], Any] | None = None
        self.engine: dict[str, Any] | None = None
        self.lock = threading.Lock()
        self._saved_at = -1  # hosts written at the last save (-1: never saved)

    def wrote(self, hosts: Iterable[str]) -> None:
        """These hosts are in the outputs now (the caller holds `lock`). A big batch (a dense
        sweep writes a million hosts) goes into the bitmap at once, in numpy: kept as strings
        until the next save, it held ~36 MB at a /12."""
        log = self.log
        log.new.extend(hosts)
        if len(log.new) >= 4096 and log.bits is not None and "numpy" in sys.modules:
            log.fold(len(log.new))

    def written(self) -> int:
        return self.log.count + len(self.log.new)

    def remaining(self) -> TargetSpace:
        """The targets minus the hosts written, with the names the user gave (a run with an
        engine state scans every target again: its state knows which hosts to skip)."""
        if self.engine is not None:
            return self.space
        done4, done6 = self.log.intervals()
        space = TargetSpace.from_intervals(subtract(self.v4, done4), subtract(self.v6, done6))
        space.names = {ipaddress.ip_address(a): n for a, n in self.names.items()}
        return space

    # ---------------------------------------------------------------- file

    def tick(self) -> None:
        """Save if hosts were written since the last save, or always when the run has an
        engine state to keep (the timer's call, once a second)."""
        if self.written() != self._saved_at or self.snapshot is not None:
            self.save()

    def save(self) -> None:
        """Write the state now, atomically; the output lengths are read with the hosts."""
        with self.lock:
            if self.before_save is not None:
                self.before_save()
            # The hosts and the lengths together: `wrote` may fold into the bitmap at any time.
            self.log.fold(len(self.log.new))
            offsets = {p: _size(p) for p in self.files}
            written = self.log.to_json()
            # With the hosts written: the state says which of its hosts are in the outputs.
            engine = self.snapshot(self.log.has_many) if self.snapshot is not None else None
        self.offsets = offsets
        dynamic = json.dumps(
            {"written": written, "offsets": offsets, "saved": time.time(), "engine": engine},
            separators=(",", ":"),
        )
        head = f'{{"format":"{FORMAT}","hash":"{self.digest}","job":{self._static},'
        write_atomically(self.path, head + dynamic[1:])
        self._saved_at = self.log.count

    def remove(self) -> None:
        """The run finished: its checkpoint goes (the outputs stay)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunCheckpoint:
        """Read a checkpoint this module wrote; a damaged or foreign one is a UsageError."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise UsageError(f"--resume {path}: not a hilos checkpoint")
            job = data["job"]
            tg = job["targets"]
            space = TargetSpace.from_intervals(
                [(int(a), int(b)) for a, b in tg["v4"]], [(int(a), int(b)) for a, b in tg["v6"]]
            )
            space.names = {ipaddress.ip_address(a): str(n) for a, n in job["names"].items()}
            ckpt = cls(path, str(job["kind"]), space, job["options"], job["seed"])
            if ckpt.digest != data["hash"]:
                raise UsageError(f"--resume {path}: the configuration does not match its hash")
            ckpt.log.load(data["written"])
            ckpt.offsets = {str(k): int(v) for k, v in data["offsets"].items()}
            ckpt.engine = data.get("engine")
        except (OSError, KeyError, TypeError, ValueError, zlib.error) as exc:
            raise UsageError(f"--resume {path}: damaged checkpoint ({exc!r})") from None
        ckpt.files = list(ckpt.offsets)
        ckpt._saved_at = ckpt.log.count
        return ckpt


def is_run_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Is `path` a one-piece run's checkpoint (not a chunked job's)? Its format comes first."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.startswith(f'{{"format":"{FORMAT}"'.encode())


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
