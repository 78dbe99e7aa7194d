"""The default checkpoint of `hilos scan`/`sweep` run in one piece (hilos.resume.onepiece).

Every scan and sweep keeps one unless --no-checkpoint (or --baseline, whose report needs the
whole run, or --shard, whose walk a smaller target list would change): next to the first
output file (FILE.checkpoint, BASE.checkpoint for -oA), else, with every output on stdout, in
$XDG_STATE_HOME/hilos (~/.local/state/hilos) as KIND-HASH.checkpoint. Its path is said on
stderr only when the run is interrupted; a run that completes removes it. --checkpoint FILE
asks for a chunked run instead (cli.chunked: at most a second of probes sent twice).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hilos.cli import chunked
from hilos.cli.options import open_cli_outputs, parse_cli_targets
from hilos.errors import UsageError

if TYPE_CHECKING:
    from hilos.output import OutputSet
    from hilos.output.progress import Progress
    from hilos.resume.onepiece import RunCheckpoint
    from hilos.targets import TargetSpace

__all__ = ["Keeper", "engine_state", "nothing_left", "resume", "state_dir", "targets"]

Kind = Literal["scan", "sweep"]

#: Seconds between two saves at most (the issue: at least once a second); half that when the
#: run keeps its own state, so that what a resumed run sends twice stays under a second.
INTERVAL = 1.0
STATE_INTERVAL = 0.5


def state_dir() -> Path:
    """$XDG_STATE_HOME/hilos, else ~/.local/state/hilos: where a run with every output on
    stdout keeps its checkpoint (masscan's paused.conf lands in the current directory)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "hilos"


def resume(args: argparse.Namespace, kind: Kind) -> tuple[argparse.Namespace, RunCheckpoint | None]:
    """--resume FILE of a one-piece run: the options saved in it and the checkpoint; (args,
    None) for anything else (a chunked job's checkpoint, or no --resume)."""
    from hilos.resume.onepiece import RunCheckpoint, is_run_checkpoint

    if not args.resume or not is_run_checkpoint(args.resume):
        return args, None
    if getattr(args, "no_checkpoint", False):
        raise UsageError("--no-checkpoint with --checkpoint/--resume: give one of them")
    if args.targets or args.input_file or args.cluster or args.checkpoint:
        raise UsageError("--resume FILE takes the job from FILE: give no targets with it")
    ckpt = RunCheckpoint.load(args.resume)
    if ckpt.kind != kind:
        raise UsageError(f"--resume {args.resume}: a {ckpt.kind}: hilos {ckpt.kind} --resume")
    quiet = args.quiet
    args = argparse.Namespace(**{**vars(args), **ckpt.options})
    args.resume, args.quiet = None, quiet
    return args, ckpt


def targets(
    args: argparse.Namespace,
    notice: Callable[[str], None],
    resumed: RunCheckpoint | None,
    empty: str,
) -> TargetSpace | None:
    """The run's targets: the command line's (none left is a UsageError starting with
    `empty`), or a resumed run's not written yet (None when every one was)."""
    if resumed is not None:
        rest = resumed.remaining()
        return rest if rest.size else None
    space = parse_cli_targets(args, notice)
    if space.size == 0:
        raise UsageError(f"{empty} (give addresses, CIDR ranges, names or -iL FILE)")
    return space


def engine_state(resumed: RunCheckpoint | None) -> dict[str, Any]:
    """A resumed run's scan state and which hosts its outputs hold (hilos.scanstate), as the
    pipeline's `resume` and `written`; nothing for a new run."""
    if resumed is None:
        return {}
    return {"resume": resumed.engine, "written": resumed.log.has_many}


def _default_path(args: argparse.Namespace, kind: Kind, digest: str) -> Path | None:
    # Beside the first output that is a file (-o /dev/null: not in /dev).
    files = [f for f in chunked.output_files(args) if os.path.isfile(f) or not os.path.lexists(f)]
    if files:
        return Path(f"{files[0]}.checkpoint")
    folder = state_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None  # no state directory to write: run without a checkpoint
    return folder / f"{kind}-{digest[:16]}.checkpoint"


class Keeper:
    """Writes a run's hosts to its outputs and keeps its checkpoint beside them (or, with
    `ckpt` None, just writes). `open()` opens the outputs (a resumed run's cut and appended
    to), `start()` saves once and starts the timer, `write()`/`write_many()` record each host
    with the outputs' lengths, `stop()` saves on an interrupt, `finish()` removes it."""

    def __init__(self, kind: Kind, ckpt: RunCheckpoint | None, resumed: bool = False) -> None:
        self.kind = kind
        self.ckpt = ckpt
        self.resumed = resumed
        self._done = threading.Event()
        self._torn = False  # a write of the outputs in progress (its hosts not recorded yet)
        self._thread: threading.Thread | None = None

    @classmethod
    def for_run(
        cls,
        args: argparse.Namespace,
        kind: Kind,
        space: TargetSpace,
        resumed: RunCheckpoint | None,
    ) -> Keeper:
        """The keeper of this run: its resumed checkpoint, a new default one, or none."""
        if resumed is not None:
            return cls(kind, resumed, resumed=True)
        if getattr(args, "no_checkpoint", False) or getattr(args, "baseline", None):
            return cls(kind, None)
        if getattr(args, "shard", None):
            return cls(kind, None)
        from hilos.resume.onepiece import RunCheckpoint

        options = chunked.saved_options(args)
        ckpt = RunCheckpoint(os.devnull, kind, space, options, args.seed)
        path = _default_path(args, kind, ckpt.digest)
        if path is None:
            return cls(kind, None)
        ckpt.path = path
        return cls(kind, ckpt)

    def open(self, args: argparse.Namespace, progress: Progress, meta: dict[str, Any]) -> Any:
        """The outputs: new ones, or a resumed run's, each cut to the length the checkpoint
        pairs with the hosts written."""
        ckpt = self.ckpt
        if ckpt is None or not self.resumed:
            out = open_cli_outputs(self.kind, args, progress, meta)
            if ckpt is not None:
                ckpt.files = chunked.resumable_files(args, self.kind)
        else:
            out = chunked.open_appended(args, self.kind, progress, meta, ckpt.path, ckpt.offsets)
        if ckpt is not None:
            # write(..., flush=False) may hold lines back; a failure is the main thread's
            ckpt.before_save = functools.partial(out.flush, background=True)
        return out

    def keep_state(self, run: Any) -> None:
        """Save the run's own state with its hosts: `run.snapshot(written)` (a pipeline.Scan,
        a Sweeper), which is told so (`keep_state`: a scan then keeps what it needs)."""
        if self.ckpt is not None:
            self.ckpt.snapshot = run.snapshot
            if hasattr(run, "keep_state"):  # a Scan: its scanners keep their answers for it
                run.keep_state = True

    def start(self) -> None:
        if self.ckpt is None:
            return
        try:
            self.ckpt.save()
        except OSError:
            self.ckpt = None  # an unwritable checkpoint costs the resume, not the run
            return
        self._thread = threading.Thread(target=self._tick, name="hilos-checkpoint", daemon=True)
        self._thread.start()

    def _tick(self) -> None:
        # On a fixed cadence: a slow save (an fsync on a busy disk) delays the next one by
        # no more than it lasted over the interval. The first comes after a whole second: a
        # run shorter than that never waits at its end for a save in flight (its fsync), and
        # a kill within it loses less than a second of probes anyway.
        due = time.monotonic() + INTERVAL
        while not self._done.wait(max(0.0, due - time.monotonic())):
            ckpt = self.ckpt
            if ckpt is None:
                return
            try:
                ckpt.tick()
            except OSError:
                return  # the disk is full or gone: the run goes on, the last save stays
            due = max(due + (STATE_INTERVAL if self._has_state() else INTERVAL), time.monotonic())

    def _has_state(self) -> bool:
        return self.ckpt is not None and self.ckpt.snapshot is not None

    def write(self, out: OutputSet, host: Any, flush: bool = True) -> None:
        ckpt = self.ckpt
        if ckpt is None:
            out.write(host, flush)
            return
        with ckpt.lock:
            self._torn = True  # until the host is recorded too (an interrupt may land between)
            out.write(host, flush)
            ckpt.log.new.append(host.host)
            self._torn = False

    def write_many(self, out: OutputSet, hosts: Sequence[Any]) -> None:
        ckpt = self.ckpt
        if ckpt is None:
            out.write_many(hosts)
            return
        with ckpt.lock:
            self._torn = True
            out.write_many(hosts)
            ckpt.wrote(h.host for h in hosts)
            self._torn = False

    def stop(self) -> None:
        """An interrupted or failed run: save now, before the unfinished hosts are written
        (a resumed run cuts them off again and probes them). Not when the interrupt landed
        inside a write: the outputs may hold part of a host the checkpoint does not list, so
        the last save (at most a second old) stays, and a resumed run cuts the files there."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self.ckpt is not None and not self._torn:
            with contextlib.suppress(OSError):
                self.ckpt.save()

    def tell(self) -> None:
        """After "hilos: interrupted": where to continue (the only time the path is said)."""
        if self.ckpt is not None and self.ckpt.path.exists():
            sys.stderr.write(f"hilos: continue with: hilos {self.kind} --resume {self.ckpt.path}\n")

    def finish(self) -> None:
        """The run completed: its checkpoint goes (the outputs stay)."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self.ckpt is not None:
            self.ckpt.remove()


def nothing_left(args: argparse.Namespace, kind: Kind, ckpt: RunCheckpoint | None) -> int:
    """A resumed run whose every target was written (killed while closing): the outputs
    get their trailers, the checkpoint goes."""
    from hilos.cli.process import EXIT_OK
    from hilos.output.progress import Progress

    assert ckpt is not None
    progress = Progress(sys.stderr, quiet=True, label=kind)
    out = chunked.open_appended(args, kind, progress, {"start": time.time()}, ckpt.path,
                                ckpt.offsets)  # fmt: skip
    out.close({"addresses": 0, "up": 0, "elapsed": 0.0})
    ckpt.remove()
    return EXIT_OK
