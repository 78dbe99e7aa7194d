"""A one-line progress display for stderr (done/total, percent, rate, ETA, hosts up).

It draws only when its stream is a TTY and it is not quiet; otherwise every method is a cheap
no-op, so callers never need to check. Redraws are throttled (at most `1/interval` per second)
because a terminal write costs far more than a probe. Thread-safe.

Usage::

    progress = Progress(sys.stderr, quiet=args.quiet)
    with open_outputs(..., progress=progress) as out:
        for i, result in enumerate(results, 1):
            out.write(result)
            progress.update(i, total, found)
    progress.close()
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_duration", "rate_line"]

_CLEAR = "\r\x1b[K"  # back to column 0, erase to end of line (ECMA-48 EL)


def format_duration(seconds: float) -> str:
    """`0:07`, `12:34`, `1:02:03`."""
    total = max(int(seconds + 0.5), 0)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _format_rate(rate: float) -> str:
    if rate >= 10_000:
        return f"{rate / 1000:.0f}k/s"
    if rate >= 100:
        return f"{rate:.0f}/s"
    return f"{rate:.1f}/s"


class Progress:
    """The progress line. `update(done, total, found)` from any thread; `close()` erases it.

    `log_every` (seconds; the CLI sets it for -v, as nmap's --stats-every) makes a stream
    that is not a terminal get a plain status line at that interval instead of nothing.
    """

    log_every: float | None = None
    #: the --rate asked for, shown beside the packets/s achieved (when `update` gets `sent`)
    requested_rate: float | None = None

    def __init__(
        self,
        stream: TextIO,
        *,
        quiet: bool = False,
        interval: float = 0.1,
        label: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        every = type(self).log_every
        # Not a terminal, but -v asked for progress: whole lines, no redrawing.
        self._log = not tty and every is not None
        self.enabled = (tty or self._log) and not quiet
        self._interval = every if self._log and every is not None else interval
        self._label = label
        self._clock = clock
        self._lock = threading.Lock()
        self._t0 = clock()
        self._last_draw = float("-inf")
        self._done = 0
        self._total: int | None = None
        self._found = 0
        self._sent: int | None = None  # packets sent, when the engine counts them
        self._shown = False  # is a line on the screen right now
        self._closed = False

    def update(
        self,
        done: int,
        total: int | None = None,
        found: int | None = None,
        sent: int | None = None,
    ) -> None:
        """Record progress (`sent`: packets so far, for packets/s); redraw if the last redraw
        is older than the interval."""
        if not self.enabled:
            return
        with self._lock:
            self._done = done
            if sent is not None:
                self._sent = sent
            if total is not None:
                self._total = total
            if found is not None:
                self._found = found
            now = self._clock()
            if self._closed or now - self._last_draw < self._interval:
                return
            self._draw(now)

    def clear(self) -> None:
        """Erase the line (before something else writes to the same terminal)."""
        if not self.enabled or self._log:
            return
        with self._lock:
            if self._shown:
                self._write(_CLEAR)
                self._shown = False

    def redraw(self) -> None:
        """Draw the line again now, with the latest numbers (after a `clear`)."""
        if not self.enabled or self._log:
            return
        with self._lock:
            if not self._closed and self._last_draw != float("-inf"):
                self._draw(self._clock())

    def close(self) -> None:
        """Erase the line for good; later updates are ignored."""
        if not self.enabled:
            return
        with self._lock:
            if self._shown:
                self._write(_CLEAR)
                self._shown = False
            self._closed = True

    def render(self, now: float | None = None) -> str:
        """The text of the line (without the clearing escape)."""
        now = self._clock() if now is None else now
        elapsed = max(now - self._t0, 1e-9)
        done, total = self._done, self._total
        rate = done / elapsed
        parts = [self._label] if self._label else []
        if total:
            pct = 100.0 * done / total
            parts.append(f"{done}/{total} ({pct:.1f}%)")
        else:
            parts.append(f"{done} done")
        parts.append(_format_rate(rate))
        if total and done < total and rate > 0:
            parts.append(f"ETA {format_duration((total - done) / rate)}")
        elif total and done >= total:
            parts.append(f"in {format_duration(elapsed)}")
        parts.append(f"{self._found} up")
        if self._sent is not None:
            asked = self.requested_rate
            parts.append(
                f"sent {_format_rate(self._sent / elapsed)}"
                + (f" of --rate {asked:g}" if asked else " (no --rate cap)")
            )
        return "  ".join(parts)

    def _draw(self, now: float) -> None:
        line = self.render(now)
        if self._log:
            self._write(f"hilos: {line}\n")
            self._last_draw = now
            return
        # A line wider than the terminal wraps, and "\r" then only returns to the last row.
        width = self._columns() - 1
        if width > 0 and len(line) > width:
            line = line[:width]
        self._write(_CLEAR + line)
        self._shown = True
        self._last_draw = now

    def _columns(self) -> int:
        try:
            return os.get_terminal_size(self._stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 80

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError):
            # A progress line is never worth failing the run for (closed or broken stderr).
            self.enabled = False


def rate_line(sent: int, seconds: float, asked: float | None, drops: int | None = None) -> str:
    """`hilos: sent N packets in S s (R packets/s; --rate X)[; D replies dropped ...]`: what a
    raw sweep or scan achieved beside what was asked, once at the end."""
    pps = sent / seconds if seconds > 0 else 0.0
    cap = f"--rate {asked:g}" if asked else "no --rate cap"
    line = f"hilos: sent {sent} packets in {seconds:.2f} s ({pps:.0f} packets/s; {cap})"
    if drops is not None:
        line += f"; {drops} replies dropped by the kernel"
    return line + "\n"
