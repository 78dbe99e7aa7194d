"""Process-level duties of the `hilos` command: stop signals and the standard streams.

* SIGTERM and SIGHUP stop a run the way Ctrl-C does: every result found so far is written, the
  outputs are closed (valid XML, complete JSON lines), and the exit status is 128 + the signal
  (143, 129), as a shell reports a process killed by it. The handler hands the signal to the
  current SIGINT handler (hilos.pool's graceful one while a pool runs, else Python's, which
  raises KeyboardInterrupt), so every Ctrl-C path of the commands serves both.
* A closed stdout or stderr (`hilos ... >&-`) is replaced by /dev/null instead of failing on
  `None.flush()`; a stdout that broke (EPIPE from `| head -1`, ENOSPC from `> /dev/full`) is
  pointed at /dev/null so the interpreter's final flush cannot print a second error (the
  recipe of the Python docs, "Note on SIGPIPE").
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from hilos.errors import HilosError, OutputError, UsageError

if TYPE_CHECKING:
    from hilos.output import OutputSet

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "StopSignals",
    "detach_stdout",
    "ensure_streams",
    "final_flush",
    "report_interrupted",
    "run_handler",
    "say",
    "stdout_failed",
]

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """While active, SIGTERM/SIGHUP act as Ctrl-C; `exit_code` maps the run's status.

    Installed only from the main thread (signal handlers cannot be set elsewhere); restores
    the previous handlers on exit, so an in-process caller (a test calling main()) keeps its own.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._owner = os.getpid()
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
            for sig in _STOP_SIGNALS:
                previous = signal.getsignal(sig)
                if previous == signal.SIG_IGN:
                    continue  # nohup: the user asked to ignore it
                self._previous[sig] = previous
                signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._owner:
            # A forked sender process (sweep, SYN scan) inherited this handler: it has no
            # outputs to close, so it dies of the signal as before.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.signum is None:
            self.signum = signum
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint) and on_sigint is not self._handle:
            on_sigint(signal.SIGINT, frame)  # the graceful Ctrl-C path, whichever is installed
        else:  # SIGINT ignored or default: still stop the way Ctrl-C would
            raise KeyboardInterrupt

    def exit_code(self, code: int) -> int:
        """128 + the signal when one stopped the run (a run that finished keeps its status)."""
        if self.signum is not None and code in (0, 130):
            return 128 + self.signum
        return code


def ensure_streams() -> None:
    """A closed stdout/stderr (None in sys) becomes /dev/null: output goes nowhere, quietly."""
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115


def detach_stdout() -> None:
    """Point fd 1 at /dev/null after stdout broke, so the exit-time flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def say(line: str) -> None:
    """One line on stderr; a broken stderr is not worth a second error."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def run_handler(args: argparse.Namespace) -> int:
    """Normalise the options, run the command's handler, map every failure to one line on
    stderr and an exit status: usage 2, runtime 1, Ctrl-C 130, a reader that left 0."""
    from hilos.cli.aliases import normalise

    try:
        normalise(args)
        return int(args.handler(args))
    except UsageError as exc:
        say(f"hilos: error: {exc}")
        return EXIT_USAGE
    except OutputError as exc:
        if exc.name == "-":
            detach_stdout()
            if exc.broken_pipe:
                return EXIT_OK  # the reader has all it wanted (`| head -1`)
        say(f"hilos: error: {exc}")
        return EXIT_RUNTIME
    except HilosError as exc:
        say(f"hilos: error: {exc}")
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        say("hilos: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        detach_stdout()
        return EXIT_OK
    except OSError as exc:
        # A print() to a full or closed stdout (demo, bench, lab): one line, not a traceback.
        if exc.errno in (errno.ENOSPC, errno.EIO, errno.EBADF):
            return stdout_failed(exc)
        raise


def report_interrupted(opened: Sequence[OutputSet]) -> None:
    """After a stop: the numbers the stdout report no longer ends with, on stderr."""
    for out in opened:
        if out.summary is not None:
            say(f"hilos: {out.summary.sentence()} before the interruption")


def stdout_failed(exc: OSError) -> int:
    """One line for a stdout that cannot be written (quiet for a reader that left)."""
    detach_stdout()
    if isinstance(exc, BrokenPipeError):
        return EXIT_OK
    say(f"hilos: error: writing stdout: {exc.strerror or exc}")
    return EXIT_RUNTIME


def final_flush(code: int) -> int:
    """Flush stdout now, so a full disk is one error line, not an exit-time traceback."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        failed = stdout_failed(exc)
        return failed if code == EXIT_OK else code
    return code
