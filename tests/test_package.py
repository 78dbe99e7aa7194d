"""The package surface: exports, entry points, and the CLI's usage-error contract."""

from __future__ import annotations

import subprocess
import sys

import hilos


def test_all_lists_exactly_the_public_names() -> None:
    public = {n for n in vars(hilos) if not n.startswith("_") and n not in {"annotations"}}
    modules = {n for n in public if type(getattr(hilos, n)).__name__ == "module"}
    # The worker pool's names load on first use (hilos.__getattr__).
    assert set(hilos.__all__) - {"__version__"} == (public - modules) | hilos._LAZY


def _hilos(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hilos", *args], capture_output=True, text=True, timeout=60
    )


def test_version() -> None:
    out = _hilos("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"hilos {hilos.__version__}"


def test_unknown_flag_is_one_line_exit_2() -> None:
    out = _hilos("sweep", "--no-such-flag", "127.0.0.1")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith("hilos: error: ")
    assert "Traceback" not in out.stderr


def test_bad_number_is_one_line_exit_2() -> None:
    out = _hilos("demo", "--threads", "0")
    assert out.returncode == 2
    assert out.stderr.startswith("hilos: error: ")
    assert out.stderr.count("\n") == 1


def test_bare_hilos_is_usage_not_an_error() -> None:
    # nmap's habit (issue 9): bare `hilos` prints its usage on stdout and exits 0 (test_cli too).
    out = _hilos()
    assert out.returncode == 0 and out.stdout.startswith("usage: hilos")


def test_exception_tree_is_exported_and_drawn_in_errors_docstring() -> None:
    from hilos import errors

    for name in ("InvalidArgument", "ResolveError", "TooLargeError"):
        cls = getattr(hilos, name)
        assert issubclass(cls, hilos.UsageError) and issubclass(cls, hilos.HilosError)
        assert name in (errors.__doc__ or "")
    assert issubclass(hilos.InvalidArgument, ValueError)
    assert issubclass(hilos.TooLargeError, OverflowError)
    assert issubclass(hilos.ResolveError, hilos.TargetError)


def test_every_error_of_the_tree_is_exported() -> None:
    # The tree in hilos.errors' docstring is the public one: `from hilos import OutputError`.
    import hilos.errors as errors

    tree = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, errors.HilosError)
    }
    assert tree <= set(hilos.__all__), tree - set(hilos.__all__)
