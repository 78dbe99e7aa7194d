"""A chunked job's checkpoint: configuration, seed, discovery, chunks done, results; atomic.

The file is JSON, replaced atomically (write a temporary file beside it, fsync, rename, fsync
the directory), so after `kill -9` or a power cut it holds either the previous state or the new
one, never half of each. It holds everything `--resume` needs: the job (targets with excludes
applied, ports, type, options, seed) and its hash, the command line's other options, the names
the user gave, discovery's answer, the chunks counted and what they found, the hosts already
written and each output file's length holding exactly those (a resumed run cuts the file there).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hilos.errors import UsageError
from hilos.resume.atomic import fsync_dir, write_atomically
from hilos.resume.chunks import Discovery, Merger
from hilos.resume.job import (
    JobSpec,
    discovered_from_json,
    discovered_to_json,
    host_from_json,
    host_to_json,
)

__all__ = ["FORMAT", "Checkpoint", "write_atomically"]

FORMAT = "hilos-checkpoint/1"


class Checkpoint:
    """One job's saved state at `path`. `save()` writes it now; `tick()` writes it when the
    last write is older than `interval` seconds (callers tick after every chunk and on a timer,
    so the file is never more than a second behind)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: JobSpec,
        options: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
        interval: float = 0.5,
    ) -> None:
        self.path = Path(path)
        self.spec = spec
        self.options = dict(options or {})
        self.names = dict(names or {})
        self.interval = interval
        self.count: int | None = None
        self.found: Discovery | None = None
        self.merger = Merger()
        self.finished = False
        self.offsets: dict[str, int] = {}  # output file -> bytes holding exactly those hosts
        self._written = 0.0
        self._dirty = True

    # ---------------------------------------------------------------- state

    def to_json(self) -> dict[str, Any]:
        found = self.found
        return {
            "format": FORMAT,
            "hash": self.spec.digest,
            "job": self.spec.to_json(),
            "options": self.options,
            "names": self.names,
            "chunks": self.count,
            "discovery": None
            if found is None
            else {
                "ran": found.ran,
                "up": discovered_to_json(found.up),
                "down": discovered_to_json(found.down),
            },
            "done": sorted(self.merger.done),
            "hosts": [host_to_json(h) for h in self.merger.hosts()],
            "written": self.merger.written,
            "offsets": self.offsets,
            "finished": self.finished,
            "saved": time.time(),
        }

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Checkpoint:
        """Read a checkpoint; a missing, unreadable or foreign file is a UsageError."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"--resume {path}: no such checkpoint") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"--resume {path}: not a readable checkpoint ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UsageError(f"--resume {path}: not a hilos checkpoint")
        try:
            spec = JobSpec.from_json(data["job"])
            if spec.digest != data["hash"]:
                raise UsageError(f"--resume {path}: the configuration does not match its hash")
            ckpt = cls(path, spec, data.get("options", {}), data.get("names", {}))
            ckpt.count = data["chunks"]
            disc = data["discovery"]
            if disc is not None:
                ckpt.found = Discovery(
                    tuple(discovered_from_json(disc["up"])),
                    tuple(discovered_from_json(disc["down"])),
                    bool(disc["ran"]),
                )
            for h in data["hosts"]:
                ckpt.merger.add_host(host_from_json(h))
            ckpt.merger.done.update(int(k) for k in data["done"])
            ckpt.finished = bool(data.get("finished", False))
            ckpt.merger.written.update(
                {str(h): str(st) for h, st in data.get("written", {}).items()}
            )
            ckpt.offsets = {str(k): int(v) for k, v in data.get("offsets", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"--resume {path}: damaged checkpoint ({exc!r})") from None
        ckpt._dirty = False
        return ckpt

    def changed(self) -> None:
        """Say the state moved on (a chunk counted, discovery done): the next tick writes."""
        self._dirty = True

    # ---------------------------------------------------------------- file

    def tick(self) -> None:
        if self._dirty and time.monotonic() - self._written >= self.interval:
            self.save()

    def save(self) -> None:
        """Write the whole state atomically (temporary file, fsync, rename, fsync directory)."""
        write_atomically(self.path, json.dumps(self.to_json(), separators=(",", ":")))
        self._written = time.monotonic()
        self._dirty = False

    def remove(self) -> None:
        """The job finished: its checkpoint goes (the outputs stay)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fsync_dir(self.path.parent)
