"""OutputSet.write_many: the same bytes as one write() per result, flushed once per batch."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from hilos.output import open_outputs
from hilos.results import HostResult

HOSTS = [
    HostResult(f"127.0.{i // 256}.{i % 256}", "up" if i % 3 else "down",
               "echo-reply" if i % 3 else "no-response", 0.5 + i if i % 3 else None)
    for i in range(600)
]  # fmt: skip


class _Counting(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


@pytest.mark.parametrize("show_all", [False, True])
def test_write_many_equals_write_per_result(tmp_path: Path, show_all: bool) -> None:
    formats = ["json", "text", "csv", "xml", "grep"]
    texts = []
    for mode in ("one", "many"):
        paths = [str(tmp_path / f"{mode}.{f}") for f in formats]
        out = open_outputs("sweep", formats, paths, None, show_all=show_all,
                           stdout=io.StringIO(), meta={"start": 0.0})  # fmt: skip
        if mode == "one":
            for h in HOSTS:
                out.write(h)
        else:
            out.write_many(HOSTS[:100])
            out.write_many([])
            out.write_many(HOSTS[100:])
        out.close({"addresses": 600, "up": 400, "elapsed": 1.0})
        assert (out.seen, out.up) == (600, 400)
        texts.append([Path(p).read_text() for p in paths])
    assert texts[0] == texts[1]
    assert len(texts[1][0].splitlines()) == (600 if show_all else 400)


def test_write_many_flushes_once_and_leaves_nothing_buffered() -> None:
    stream = _Counting()
    out = open_outputs("sweep", ["json"], ["-"], None, show_all=False, stdout=stream, meta={})
    before = stream.flushes
    out.write_many(HOSTS)
    assert stream.flushes == before + 1
    assert len(stream.getvalue().splitlines()) == 400
    out.close()


ODD = [
    HostResult("127.0.0.1", "up", "echo-reply", 3),  # an int RTT
    HostResult("127.0.0.2", "up", "echo-reply", 1e-7),
    HostResult("127.0.0.3", "up", "echo-reply", 123456.78951),
    HostResult("127.0.0.4", "up", 're"set\\', None),  # something to escape
    HostResult("127.0.0.5", "up", "echo-reply", 1.0, hostname="h\u00e9st\n"),
    HostResult("::1", "up", "syn-ack", 0.1234567),
]


@pytest.mark.parametrize("batch", [ODD[:3], ODD[3:4], ODD[4:5], ODD])
def test_json_lines_of_a_batch_are_the_encoders(tmp_path: Path, batch: list[HostResult]) -> None:
    got = []
    for mode in ("one", "many"):
        path = tmp_path / f"{mode}.jsonl"
        out = open_outputs("sweep", ["json"], [str(path)], None, show_all=False,
                           stdout=io.StringIO(), meta={})  # fmt: skip
        if mode == "one":
            for h in batch:
                out.write(h)
        else:
            out.write_many(batch)
        out.close()
        got.append(path.read_bytes())
    assert got[0] == got[1]


def test_clean_port_of_plain_ports_is_cached_and_cleaned() -> None:
    from hilos.output.base import CleanPort, clean_port
    from hilos.results import PortResult

    hostile = PortResult(8080, "filtered", "no-response", service="h\x1b[31mttp\n")
    got = clean_port(hostile, 100)
    assert got == CleanPort(8080, "tcp", "filtered", "no-response", "http", None, None, None,
                            False)  # fmt: skip
    assert clean_port(hostile, 100) is got  # the same few combinations are cleaned once
    probed = PortResult(22, "open", "syn-ack", service="ssh", product="Open\x07SSH")
    assert clean_port(probed, 100).product == "OpenSSH"


def test_write_without_flush_holds_the_line_until_flush() -> None:
    """OutputSet.write(..., flush=False) leaves the line buffered (a burst of results costs one
    flush); flush() puts it out; the default write flushes at once."""
    stream = _Counting()
    out = open_outputs("sweep", ["json"], ["-"], None, show_all=False, stdout=stream, meta={})
    before = stream.flushes
    out.write(HOSTS[1], flush=False)
    out.write(HOSTS[2], flush=False)
    assert stream.flushes == before
    out.flush()
    assert stream.flushes == before + 1
    out.write(HOSTS[4])
    assert stream.flushes == before + 2 and len(stream.getvalue().splitlines()) == 3
    out.close()


def test_a_background_flush_failure_is_raised_by_the_next_write() -> None:
    """A checkpoint's timer flushes from its own thread: a full disk found there is reported
    by the main thread's next write (one error, in the thread that exits with it)."""
    import errno

    from hilos.errors import OutputError

    class Full(io.StringIO):
        def flush(self) -> None:
            if self.getvalue():
                raise OSError(errno.ENOSPC, "No space left on device")

    out = open_outputs("sweep", ["json"], ["-"], None, show_all=False, stdout=Full(), meta={})
    out.write(HOSTS[1], flush=False)
    out.flush(background=True)  # no exception in the timer's thread
    with pytest.raises(OutputError, match="No space left"):
        out.write(HOSTS[2])
    assert out.failure is not None


@pytest.mark.parametrize("show_all", [False, True])
def test_scan_write_many_equals_write_per_result(tmp_path: Path, show_all: bool) -> None:
    """A burst of finished scan hosts is written as one batch: every format the same bytes as
    one by one (shared port tuples included, as a -Pn scan's silent hosts have)."""
    from hilos.results import PortResult, ScanHostResult

    silent = (PortResult(22, "filtered", "no-response"), PortResult(80, "filtered", "no-response"))
    hosts = [
        ScanHostResult(f"198.18.0.{i}", "up" if i % 4 else "down", "user-set",
                       silent if i % 3 else (PortResult(22, "open", "syn-ack", service="ssh"),
                                             PortResult(80, "closed", "reset")),
                       rtt_ms=None if i % 2 else 0.5)
        for i in range(1, 60)
    ]  # fmt: skip
    formats = ["json", "text", "csv", "xml", "grep"]
    texts = []
    for mode in ("one", "many"):
        paths = [str(tmp_path / f"s{mode}.{f}") for f in formats]
        out = open_outputs("scan", formats, paths, None, show_all=show_all,
                           stdout=io.StringIO(), meta={"start": 0.0})  # fmt: skip
        if mode == "one":
            for h in hosts:
                out.write(h)
        else:
            out.write_many(hosts[:10])
            out.write_many(hosts[10:])
        out.close({"addresses": 59, "up": 45, "elapsed": 1.0})
        texts.append([Path(p).read_text() for p in paths])
    assert texts[0] == texts[1]
