"""Tests of the stderr progress line, with a fake TTY and a fake clock."""

from __future__ import annotations

import io
import threading

from hilos.output import open_outputs
from hilos.output.progress import Progress, format_duration
from hilos.results import HostResult

CLEAR = "\r\x1b[K"


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(quiet: bool = False) -> tuple[Progress, FakeTTY, Clock]:
    stream, clock = FakeTTY(), Clock()
    return Progress(stream, quiet=quiet, clock=clock), stream, clock


def test_silent_when_not_a_tty() -> None:
    stream = io.StringIO()
    p = Progress(stream)
    p.update(1, 10, 1)
    p.clear()
    p.redraw()
    p.close()
    assert not p.enabled and stream.getvalue() == ""


def test_silent_when_quiet() -> None:
    p, stream, _ = make(quiet=True)
    p.update(1, 10, 1)
    p.close()
    assert stream.getvalue() == ""


def test_line_content() -> None:
    p, stream, clock = make()
    clock.now += 10.0
    p.update(500, 2000, 7)
    assert stream.getvalue() == CLEAR + "500/2000 (25.0%)  50.0/s  ETA 0:30  7 up"
    clock.now += 30.0
    p.update(2000, 2000, 9)
    assert stream.getvalue().endswith(CLEAR + "2000/2000 (100.0%)  50.0/s  in 0:40  9 up")


def test_unknown_total() -> None:
    p, stream, clock = make()
    clock.now += 2.0
    p.update(30000)
    assert stream.getvalue() == CLEAR + "30000 done  15k/s  0 up"


def test_redraws_are_throttled_to_the_interval() -> None:
    p, stream, clock = make()
    p.update(1, 100, 0)
    for i in range(2, 50):
        clock.now += 0.001
        p.update(i, 100, 0)
    assert stream.getvalue().count(CLEAR) == 1
    clock.now += 0.1
    p.update(50, 100, 0)
    assert stream.getvalue().count(CLEAR) == 2
    assert "50/100" in stream.getvalue()


def test_close_erases_the_line_and_ignores_later_updates() -> None:
    p, stream, clock = make()
    p.update(1, 2, 0)
    p.close()
    assert stream.getvalue().endswith(CLEAR)
    clock.now += 1.0
    before = stream.getvalue()
    p.update(2, 2, 1)
    p.redraw()
    assert stream.getvalue() == before


def test_long_lines_are_cut_to_the_terminal_width() -> None:
    stream, clock = FakeTTY(), Clock()
    p = Progress(stream, clock=clock, label="x" * 500)
    p.update(1, 2, 0)
    # a StringIO has no terminal size: the 80-column fallback applies
    assert len(stream.getvalue()) == len(CLEAR) + 79


def test_thread_safe_updates() -> None:
    stream = FakeTTY()
    p = Progress(stream, interval=0.0)
    barrier = threading.Barrier(8)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(500):
            p.update(k * 500 + i, 4000, k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    p.close()
    draws = stream.getvalue().split(CLEAR)
    assert draws[0] == "" and draws[-1] == ""
    # every draw is one whole line: nothing interleaved
    assert all(d.endswith(" up") and "/4000 (" in d for d in draws[1:-1])
    assert len(draws) > 2


def test_output_set_clears_and_redraws_around_stdout_writes() -> None:
    progress, err, _ = make()
    out_stream = io.StringIO()
    progress.update(0, 3, 0)
    out = open_outputs(
        "sweep", None, None, None, show_all=False, stdout=out_stream, meta={}, progress=progress
    )
    out.write(HostResult("127.0.0.1", "up", "echo-reply", 1.0))
    # cleared before the line went to stdout, drawn again after
    assert err.getvalue().count(CLEAR) == 3
    assert not err.getvalue().endswith(CLEAR)
    out.close()
    progress.close()
    assert err.getvalue().endswith(CLEAR)


def test_format_duration() -> None:
    assert format_duration(7.2) == "0:07"
    assert format_duration(754) == "12:34"
    assert format_duration(3723) == "1:02:03"


def test_verbose_logs_whole_lines_when_not_a_tty() -> None:
    import pytest

    mp = pytest.MonkeyPatch()
    mp.setattr(Progress, "log_every", 5.0)
    try:
        stream, clock = io.StringIO(), Clock()
        p = Progress(stream, label="scan", clock=clock)
        p.update(10, 100, 1)  # first line at once
        clock.now += 1.0
        p.update(20, 100, 1)  # throttled: within 5 s
        clock.now += 5.0
        p.update(60, 100, 2)
        p.clear()
        p.redraw()  # no terminal tricks in a log
        p.close()
        quiet = Progress(io.StringIO(), quiet=True)
        assert not quiet.enabled
    finally:
        mp.undo()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert lines[0].startswith("hilos: scan  10/100") and lines[1].endswith("2 up")
