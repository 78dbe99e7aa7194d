"""Shared test setup: privilege gates for root/lab tests (skipped unprivileged, required in CI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from hilos.lab import Lab

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    for item in items:
        if item.get_closest_marker("lab") or item.get_closest_marker("root"):
            if IN_CI:
                # In CI a skipped lab test is a failure: fail loudly instead of skipping.
                item.add_marker(pytest.mark.usefixtures("_fail_unprivileged_in_ci"))
            else:
                item.add_marker(pytest.mark.skip(reason="needs root and the lab (run as root)"))


@pytest.fixture
def _fail_unprivileged_in_ci() -> None:
    pytest.fail("lab/root test ran unprivileged in CI: CI must run as root")


@pytest.fixture(scope="session", autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Checkpoints of stdout-only runs go to $XDG_STATE_HOME/hilos: a temporary one, never the
    user's home (subprocesses inherit it)."""
    old = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if old is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = old


# --- The lab (hilos.lab): a session lab for every lab test, and a factory for special ones. ----

LAB_NAME = f"ht{os.getpid() % 100000}"  # unique per pytest process; "ht" = hilos test
_FACTORY_PREFIX = f"hf{os.getpid() % 100000}x"


def _cleanup_stale_labs() -> None:
    """Remove leftovers of test labs whose pytest process died (kill -9, crash): our own name
    reused after pid wrap-around, and any ht*/hf* lab whose recorded owner process is gone."""
    from hilos.lab import STATE_ROOT, read_state, teardown

    names = {LAB_NAME}
    netns = Path("/run/netns")
    candidates = {p.name.rsplit("-", 1)[0] for p in netns.iterdir()} if netns.is_dir() else set()
    candidates |= {p.name for p in STATE_ROOT.iterdir()} if STATE_ROOT.is_dir() else set()
    for name in candidates:
        if not re.fullmatch(r"h[tf]\d+(x\d+)?", name) or name.startswith(_FACTORY_PREFIX):
            continue
        state = read_state(name)
        owner = state.get("owner_pid") if state else None
        if isinstance(owner, int) and owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            names.add(name)
    for name in names:
        teardown(name)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The session's lab (rtt 0, default hosts), built on first use, removed at the end."""
    if not IS_ROOT:
        pytest.skip("needs root and the lab (run as root)")
    from hilos.lab import Lab

    _cleanup_stale_labs()
    the_lab = Lab.up(LAB_NAME)
    try:
        yield the_lab
    finally:
        the_lab.down()


@pytest.fixture
def make_lab() -> Iterator[Callable[..., Lab]]:
    """Factory: make_lab(rtt_ms=40, loss_percent=..., dense=..., ...) -> a Lab, removed after
    the test. Small by default (dense 8, sparse 0, ipv6 2) so it comes up fast."""
    if not IS_ROOT:
        pytest.skip("needs root and the lab (run as root)")
    from hilos.lab import Lab, teardown

    made: list[str] = []

    def factory(**kw: Any) -> Lab:
        name = f"{_FACTORY_PREFIX}{len(made)}"
        made.append(name)
        teardown(name)
        for key, value in (("dense", 8), ("sparse", 0), ("ipv6", 2)):
            kw.setdefault(key, value)
        return Lab.up(name, **kw)

    try:
        yield factory
    finally:
        for name in made:
            teardown(name)


# --- Running Python as nobody: independent of where the checkout sits. --------------------------

SRC_PACKAGE = Path(__file__).resolve().parent.parent / "src" / "hilos"
NOBODY_UID = 65534


@dataclass(frozen=True)
class Unprivileged:
    """How to run this checkout's hilos as `nobody`: `argv` (setpriv ... python) and `env`.

    The package is a world-readable copy in a temporary directory, and the interpreter one that
    nobody may execute: a checkout (and its venv) in a 0700 home directory is neither
    (issue 9 item 15).
    """

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str

    def run(self, args: Sequence[str], timeout: float = 50) -> subprocess.CompletedProcess[str]:
        """`python ARGS...` as nobody, output captured as text."""
        return subprocess.run(
            [*self.argv, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            cwd=self.cwd,
            check=False,
        )


def world_readable_copy(package: Path = SRC_PACKAGE) -> Path:
    """Copy `package` into a fresh temporary directory, every directory 0755 and file 0644;
    return the directory to put on PYTHONPATH. The caller removes it."""
    root = Path(tempfile.mkdtemp(prefix="hilos-src-"))
    shutil.copytree(package, root / package.name, ignore=shutil.ignore_patterns("__pycache__"))
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def _nobody_python(env: dict[str, str], cwd: str) -> tuple[str, ...]:
    """setpriv + the first interpreter (>= 3.10) that nobody can run with the copy on its path."""
    setpriv = (
        "setpriv",
        f"--reuid={NOBODY_UID}",
        f"--regid={NOBODY_UID}",
        "--clear-groups",
        "--",
    )
    base = getattr(sys, "_base_executable", sys.executable)
    candidates = [sys.executable, os.path.realpath(sys.executable), base]
    candidates += [p for p in (shutil.which("python3"), "/usr/bin/python3") if p]
    check = "import sys, hilos; assert sys.version_info >= (3, 10)"
    tried = []
    for python in dict.fromkeys(candidates):
        proc = subprocess.run(
            [*setpriv, python, "-c", check],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            cwd=cwd,
            check=False,
        )
        if proc.returncode == 0:
            return (*setpriv, python)
        tried.append(f"{python}: {proc.stderr.strip().splitlines()[-1:]}")
    pytest.fail("no Python interpreter that nobody can run: " + "; ".join(tried))


@pytest.fixture(scope="session")
def unprivileged() -> Iterator[Unprivileged]:
    """Run hilos as nobody (root only): a world-readable copy of src/hilos, a runnable Python."""
    if not IS_ROOT:
        pytest.skip("dropping privileges needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not installed")
    root = world_readable_copy()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = str(root)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        yield Unprivileged(_nobody_python(env, str(root)), env, str(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- The lab's fake services on loopback (tests/test_lab_services*.py) ---------------------------


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, int]]]:
    """A hilos.lab.services process with one listener of each kind on a random loopback address:
    kind -> (addr, port), plus "http6" on ::1 when the machine has it."""
    from lab_services_support import every_kind

    yield from every_kind(tmp_path_factory)
