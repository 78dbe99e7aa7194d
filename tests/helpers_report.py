"""Test helpers for hilos.report: Debian's headless Chromium, and a small scan to render."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from hilos.report.model import ScanRun
from hilos.results import PortResult, ScanHostResult

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def chromium() -> str:
    """The headless browser; skipped only off CI as a normal user (as the lab tests are)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if IS_ROOT or IN_CI:
            pytest.fail("chromium is missing: run scripts/system-deps (Debian's chromium package)")
        pytest.skip("chromium not installed (scripts/system-deps installs it as root)")
    return path


def browse(page: Path, *flags: str, fragment: str = "", timeout: float = 90) -> str:
    """Run headless Chromium on file://PAGE#FRAGMENT with `flags`; its stdout (for --dump-dom,
    the DOM after the page's script ran). A fresh profile each time: runs never share state."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="hilos-chromium-") as profile:
        proc = subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                f"--user-data-dir={profile}",
                *flags,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def dump_dom(page: Path, fragment: str = "") -> str:
    return browse(page, "--dump-dom", fragment=fragment)


def port(number: int, state: str = "open", **kw: object) -> PortResult:
    return PortResult(number, state, kw.pop("reason", "syn-ack"), **kw)  # type: ignore[arg-type]


def host(address: str, *ports: PortResult, status: str = "up", **kw: object) -> ScanHostResult:
    return ScanHostResult(address, status, "syn-ack", tuple(ports), **kw)  # type: ignore[arg-type]


def run_of(*hosts: ScanHostResult, tool: str = "hilos", **kw: object) -> ScanRun:
    return ScanRun(hosts=tuple(hosts), tool=tool, **kw)  # type: ignore[arg-type]
