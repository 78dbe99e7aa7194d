"""Which outputs a run writes: --format, -o, -oA and nmap's -oX pairs turned into a checked plan.

The rules (hilos.output's docstring tells them to users):

1. `--format F` and `-o FILE` may each be repeated; they pair up in order.
2. A `--format` left without an `-o` writes to stdout; `-o -` is stdout too.
3. An `-o` left without a `--format` takes its format from the extension (EXTENSIONS); an
   unknown extension means text when no `--format` was given at all, else it is an error.
4. `-oA BASE` adds every format but html, each under its own extension (RULES).
5. When no output goes to stdout, the text report still does (as nmap does).
6. At most one output goes to stdout and no file is named twice.

Breaking a rule raises UsageError before any file is created; no writer is imported here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from hilos.errors import UsageError
from hilos.output.base import Kind

__all__ = [
    "EXTENSIONS",
    "RULES",
    "STDOUT",
    "FormatRule",
    "OutputSpec",
    "formats_for",
    "infer_format",
    "plan_outputs",
]

STDOUT = "-"


@dataclass(frozen=True, slots=True)
class FormatRule:
    """What planning knows of a format: the extension -oA gives it, the runs it serves."""

    extension: str
    kinds: tuple[Kind, ...]
    in_all: bool = True  # written by -oA (the HTML page is not: it is a view, not a record)


RULES: dict[str, FormatRule] = {
    "text": FormatRule(".nmap", ("sweep", "scan")),
    "json": FormatRule(".jsonl", ("sweep", "scan")),
    "csv": FormatRule(".csv", ("sweep", "scan")),
    # Sweeps too: nmap -sn -oX/-oG write hosts without ports, and nmap users type them.
    "xml": FormatRule(".xml", ("sweep", "scan")),
    "grep": FormatRule(".gnmap", ("sweep", "scan")),
    # One self-contained page written at the end of the run (hilos.output.html).
    "html": FormatRule(".html", ("sweep", "scan"), in_all=False),
}
"""Every format, in -oA order."""

EXTENSIONS = {
    ".jsonl": "json",
    ".json": "json",
    ".ndjson": "json",
    ".csv": "csv",
    ".xml": "xml",
    ".gnmap": "grep",
    ".txt": "text",
    ".nmap": "text",
    ".html": "html",
    ".htm": "html",
}
"""The format an `-o FILE` without a `--format` takes from its extension."""


def formats_for(kind: Kind) -> tuple[str, ...]:
    """The format names valid for `kind`, in -oA order."""
    return tuple(name for name, rule in RULES.items() if kind in rule.kinds)


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """One planned output: a format and a path ("-" = stdout)."""

    format: str
    path: str

    @property
    def to_stdout(self) -> bool:
        return self.path == STDOUT


def infer_format(path: str) -> str | None:
    """The format `path`'s extension names (None for stdout or an unknown extension)."""
    if path == STDOUT:
        return None
    return EXTENSIONS.get(os.path.splitext(path)[1].lower())


def plan_outputs(
    kind: Kind,
    formats: Sequence[str] | None,
    paths: Sequence[str] | None,
    base: str | None,
    *,
    explicit: Sequence[tuple[str, str]] | None = None,
) -> list[OutputSpec]:
    """Apply the rules of the module docstring; raise UsageError on any conflict.

    `explicit` holds (format, path) pairs that need no pairing (nmap's `-oX FILE`): their
    format is taken whatever the file's extension, as nmap does.
    """
    if kind not in ("sweep", "scan"):
        raise ValueError(f"kind must be 'sweep' or 'scan', not {kind!r}")
    formats = list(formats or ())
    paths = list(paths or ())
    valid = formats_for(kind)
    plan = [OutputSpec(fmt, path) for fmt, path in explicit or ()]
    plan += _paired(formats, paths)
    plan += _by_extension(paths[len(formats) :], any_format=bool(formats))
    if base is not None:
        if not base or base == STDOUT:
            raise UsageError("-oA needs a file name base, not stdout")
        plan += [OutputSpec(f, base + RULES[f].extension) for f in valid if RULES[f].in_all]
    _check(plan, kind, valid)
    if not any(spec.to_stdout for spec in plan):
        plan.append(OutputSpec("text", STDOUT))
    return plan


def _paired(formats: Sequence[str], paths: Sequence[str]) -> list[OutputSpec]:
    """Rules 1 and 2: the i-th --format with the i-th -o, or stdout."""
    plan = []
    for i, fmt in enumerate(formats):
        path = paths[i] if i < len(paths) else STDOUT
        inferred = infer_format(path)
        if inferred is not None and inferred != fmt:
            # `--format xml -o a.jsonl` wrote XML into a .jsonl file: never silently.
            raise UsageError(
                f"-o {path} pairs with --format {fmt}, but its extension means {inferred}; "
                f"rename the file, or drop --format to take the format from the extension"
            )
        plan.append(OutputSpec(fmt, path))
    return plan


def _by_extension(paths: Sequence[str], *, any_format: bool) -> list[OutputSpec]:
    """Rule 3: the -o files left without a --format."""
    plan = []
    for path in paths:
        inferred = infer_format(path)
        if inferred is None:
            if any_format:
                raise UsageError(
                    f"-o {path}: more -o than --format and its extension names no format; "
                    "add a --format for it (they pair up in order)"
                )
            inferred = "text"
        plan.append(OutputSpec(inferred, path))
    return plan


def _check(plan: Sequence[OutputSpec], kind: Kind, valid: Sequence[str]) -> None:
    """Rule 6, and every format one this kind of run can write."""
    for spec in plan:
        if spec.format not in valid:
            raise UsageError(
                f"format {spec.format!r} is not available for {kind} "
                f"(choose from {', '.join(valid)})"
            )
    to_stdout = [s for s in plan if s.to_stdout]
    if len(to_stdout) > 1:
        names = ", ".join(s.format for s in to_stdout)
        raise UsageError(
            f"only one output can go to stdout, got {len(to_stdout)} ({names}); "
            "give each extra --format an -o FILE"
        )
    seen: dict[str, str] = {}
    for spec in plan:
        if spec.to_stdout:
            continue
        key = os.path.realpath(spec.path)
        if key in seen:
            raise UsageError(f"{spec.path} is named by two outputs ({seen[key]}, {spec.format})")
        seen[key] = spec.format
