"""Result writers (text, JSON Lines, CSV, nmap XML, grepable, an HTML page) behind `open_outputs`.

Choosing outputs (the rules `--format`, `-o` and `-oA` follow):

1. `--format F` and `-o FILE` may each be repeated; they pair up in order: the i-th `-o` gets
   the i-th `--format` (`--format json -o a.jsonl --format xml -o a.xml`).
2. A `--format` left without an `-o` writes to stdout. `-o -` also means stdout.
3. An `-o` left without a `--format` takes its format from the extension: .jsonl/.json → json,
   .csv → csv, .xml → xml, .gnmap → grep, .txt/.nmap → text, .html → html. An unknown
   extension means text when no `--format` was given at all, and is an error otherwise (the
   pairing is ambiguous).
4. `-oA BASE` adds every format: BASE.nmap (text, nmap's name), BASE.jsonl, BASE.csv,
   BASE.xml and BASE.gnmap (for a sweep: hosts without ports, as nmap -sn writes them); not
   html, a page written once at the end (`--format html -o FILE` asks for it).
5. When no output goes to stdout, the text report still does (as nmap does).
6. At most one output may go to stdout and no file may be named twice. Breaking a rule raises
   UsageError, before any file is created.

Every writer streams: each result is written and flushed as it arrives, so an interrupted run
keeps what it found. `close()` writes trailers (XML closing tags, summaries) even after Ctrl-C.

Usage::

    with open_outputs("scan", ["xml"], ["out.xml"], None, show_all=False,
                      stdout=sys.stdout, meta={"args": "hilos scan 127.0.0.1"}) as out:
        for result in scanner:
            out.write(result)
        out.close({"addresses": 1, "up": 1, "elapsed": 0.5})
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Literal, TextIO

from hilos.errors import OutputError, UsageError
from hilos.output.base import Kind, Result, Summary, Writer
from hilos.output.plan import RULES, STDOUT, OutputSpec, formats_for, plan_outputs
from hilos.results import HostResult, ScanHostResult

if TYPE_CHECKING:
    from hilos.output.progress import Progress

__all__ = [
    "FORMATS",
    "OutputError",
    "OutputSet",
    "OutputSpec",
    "Summary",
    "formats_for",
    "open_outputs",
    "plan_outputs",
]


@dataclass(frozen=True, slots=True)
class _Format:
    """A format's writer (`module`.`cls`, imported when first used: the XML and CSV modules
    would cost every run's start ~15 ms) and its planning rule."""

    module: str
    cls: str
    extension: str
    kinds: tuple[Kind, ...]

    @property
    def writer(self) -> type[Writer]:
        writer: type[Writer] = getattr(importlib.import_module(self.module), self.cls)
        return writer


_WRITERS: dict[str, tuple[str, str]] = {
    "text": ("hilos.output.text", "TextWriter"),
    "json": ("hilos.output.jsonl", "JsonLinesWriter"),
    "csv": ("hilos.output.csvout", "CsvWriter"),
    "xml": ("hilos.output.xml", "XmlWriter"),
    "grep": ("hilos.output.grepable", "GrepableWriter"),
    "html": ("hilos.output.html", "HtmlWriter"),
}

FORMATS: dict[str, _Format] = {
    name: _Format(*_WRITERS[name], rule.extension, rule.kinds) for name, rule in RULES.items()
}
"""Every format by name, in -oA order (the rules live in hilos.output.plan)."""

_Action = Callable[[Writer], None]


class OutputSet:
    """Every output of one run: write() fans a result out to all, close() finishes them all.

    Thread-safe: results may be written from several threads. A Progress given to
    `open_outputs` is cleared before anything reaches stdout and redrawn after, so the
    progress line on stderr never tears the report on a shared terminal.
    """

    def __init__(
        self,
        writers: Sequence[Writer],
        *,
        kind: Kind,
        start: float,
        show_all: bool = False,
        progress: Progress | None = None,
        only_open: bool = False,
    ) -> None:
        self._writers = list(writers)
        self._only_open = only_open
        self._kind = kind
        self._start = start
        self._show_all = show_all
        self._progress = progress
        self._lock = threading.Lock()
        self._closed = False
        self.seen = 0
        self.up = 0
        self.failure: OutputError | None = None  # the first write that failed
        self._unreported: OutputError | None = None  # a background flush's, for the next call
        self.summary: Summary | None = None  # what close() wrote
        self._type = ScanHostResult if kind == "scan" else HostResult

    @property
    def paths(self) -> list[str]:
        """Where each output goes ("-" for stdout), in plan order."""
        return [w.name for w in self._writers]

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, result: Result, flush: bool = True) -> None:
        """Write one result to every output and flush each. `flush=False` when more results
        are ready at once (then `flush()` after the last): a /16 -Pn scan ends with 65,536
        hosts in a burst. Stdout shared with the progress line is always flushed."""
        with self._lock:
            self._raise_unreported()
            shown = self._admit(result)
            if shown is None:
                return
            try:
                self._each(lambda w: w.write(shown, flush or self._shares_progress(w)))
            except OutputError as exc:
                self.failure = self.failure or exc
                raise

    def flush(self, *, background: bool = False) -> None:
        """Flush every output (what `write(..., flush=False)` left buffered). `background`:
        called from another thread (a checkpoint's timer), a failure is raised by the next
        write or close instead, in the thread that reports it."""
        with self._lock:
            try:
                self._each(lambda w: w.flush())
            except OutputError as exc:
                self.failure = self.failure or exc
                if not background:
                    raise
                self._unreported = exc

    def _raise_unreported(self) -> None:
        exc, self._unreported = self._unreported, None
        if exc is not None:
            raise exc

    def _shares_progress(self, w: Writer) -> bool:
        return w.name == STDOUT and self._progress is not None

    def write_many(self, results: Sequence[Result]) -> None:
        """write() for a batch (a batched sweep's): each output flushed once for all of them,
        so a million lines do not cost a million flushes; every line is out on return."""
        with self._lock:
            shown = [r for r in map(self._admit, results) if r is not None]
            if not shown:
                return
            try:
                self._each(lambda w: w.write_many(shown))
            except OutputError as exc:
                self.failure = self.failure or exc
                raise

    def _admit(self, result: Result) -> Result | None:
        """Count `result`; what the outputs should get of it (None: nothing)."""
        if not isinstance(result, self._type):
            raise TypeError(f"{self._kind} outputs take {self._type.__name__}, not {result!r}")
        if self._closed:
            raise ValueError("write() on a closed OutputSet")
        self.seen += 1
        if result.status == "up":
            self.up += 1
        elif not self._show_all:
            return None  # a down host goes nowhere: skip the per-writer calls (most of a sweep)
        if self._only_open and isinstance(result, ScanHostResult):
            # --open (nmap's): only open ports, and only hosts that have one.
            opened = result.open_ports
            if not opened:
                return None
            if len(opened) != len(result.ports):
                result = replace(result, ports=opened)
        return result

    def close(
        self, summary: Mapping[str, object] | None = None, *, error: str | None = None
    ) -> None:
        """Write every trailer and close the files; idempotent.

        `summary` is {"addresses", "up", "elapsed"}; a missing key (or no dict) falls back to
        what this set has seen. `error` (e.g. "interrupted") marks an unfinished run. The
        generic "failed" is replaced by the real reason (a failed output, or the exception
        being handled when close() is called), so XML's errormsg says what went wrong.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            error = self._reason(error)
            unreported, self._unreported = self._unreported, None
            fallback = Summary(self.seen, self.up, max(time.time() - self._start, 0.0), error)
            final = fallback if summary is None else Summary.from_mapping(summary, fallback)
            self.summary = final
            try:
                self._each(lambda w: w.close(final), every=True)
            except OutputError as exc:
                self.failure = self.failure or exc
                raise
            if unreported is not None:
                raise unreported

    def _reason(self, error: str | None) -> str | None:
        if error != "failed":
            return error
        if self.failure is not None:
            return str(self.failure)
        exc = sys.exc_info()[1]
        if exc is None:
            return error
        if isinstance(exc, KeyboardInterrupt):  # a stop signal reaching a failure path
            return "interrupted"
        return str(exc) or type(exc).__name__

    def _each(self, action: _Action, every: bool = False) -> None:
        # stdout writers between a progress clear and redraw; on failure, with `every`, the
        # other outputs still get their turn (a broken pipe must not truncate the XML file).
        first: BaseException | None = None
        for w in self._writers:
            shared = w.name == STDOUT and self._progress is not None
            try:
                if shared and self._progress is not None:
                    self._progress.clear()
                action(w)
            except BaseException as exc:
                if not every:
                    raise
                first = first or exc
            finally:
                if shared and self._progress is not None and not self._closed:
                    self._progress.redraw()
        if first is not None:
            raise first

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        elif isinstance(exc, KeyboardInterrupt):
            self.close(error="interrupted")
        else:
            self.close(error=str(exc) or type(exc).__name__)


def open_outputs(
    kind: Kind,
    formats: Sequence[str] | None,
    paths: Sequence[str] | None,
    base: str | None,
    *,
    show_all: bool,
    stdout: TextIO,
    meta: Mapping[str, object],
    progress: Progress | None = None,
    explicit: Sequence[tuple[str, str]] | None = None,
    only_open: bool = False,
    append: Mapping[str, int] | None = None,
) -> OutputSet:
    """Open every output the options ask for (see the module docstring for the rules).

    `meta` feeds headers and trailers: "args" (the command line), "start" (epoch seconds),
    "version", and for XML "scan_type" ("connect"|"syn") and "ports" (tuple of ints or a spec
    string). `explicit` are nmap-style (format, path) pairs (see plan_outputs); `only_open`
    keeps only open ports and hosts with one (--open). Files are truncated and created now; a
    file that cannot be created raises UsageError naming it, after closing the ones already
    opened. `append` {path: byte offset} continues files of a resumed scan instead: each is cut
    to its offset (what the checkpoint knows was written) and written on, without a header.
    """
    plan = plan_outputs(kind, formats, paths, base, explicit=explicit)
    append = append or {}
    full_meta: dict[str, object] = dict(meta)
    full_meta.setdefault("start", time.time())
    if "version" not in full_meta:
        from hilos import __version__

        full_meta["version"] = __version__
    start = float(full_meta["start"])  # type: ignore[arg-type]
    writers: list[Writer] = []
    try:
        for spec in plan:
            cls = FORMATS[spec.format].writer
            if spec.to_stdout:
                stream, owns = stdout, False
            else:
                try:
                    if spec.path in append:
                        os.truncate(spec.path, append[spec.path])
                    # newline="" so CSV's own line ends are written untranslated.
                    mode: Literal["a", "w"] = "a" if spec.path in append else "w"
                    stream = open(spec.path, mode, encoding="utf-8", newline="")  # noqa: SIM115
                except OSError as exc:
                    raise UsageError(f"cannot write {spec.path}: {exc.strerror or exc}") from exc
                owns = True
            writer = cls(
                stream,
                kind=kind,
                show_all=show_all,
                meta=full_meta,
                owns_stream=owns,
                name=spec.path,
            )
            writers.append(writer)
            if spec.to_stdout or spec.path not in append:
                writer.open()
    except BaseException as exc:
        # The outputs already opened get their trailers: a header-only XML is not a document.
        failed = Summary(0, 0, 0.0, str(exc) or type(exc).__name__)
        for w in writers:
            with contextlib.suppress(Exception):
                w.close(failed)
        raise
    return OutputSet(
        writers,
        kind=kind,
        start=start,
        show_all=show_all,
        progress=progress,
        only_open=only_open,
    )
