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


def test_a_udp_scan_or_a_sweep_loads_only_what_it_uses() -> None:
    """Every module is ~1 ms of each run's start: a UDP scan's and a sweep's imports leave out
    the SYN engine, the TCP banner dialogue (ssl), the formats not asked for, tempfile."""
    code = (
        "import sys, hilos.cli, hilos.cli.scan, hilos.cli.sweep, hilos.pipeline, hilos.output,"
        " hilos.resume.onepiece, hilos.udp.scanner, hilos.services.udp, hilos.staged;"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())  # fmt: skip
    heavy = {"ssl", "tempfile", "xml.etree.ElementTree", "csv", "hilos.syn.scanner",
             "hilos.services.dialogue", "hilos.output.xml", "hilos.resume.chunks"}  # fmt: skip
    assert not heavy & loaded


def test_the_lazy_names_still_resolve() -> None:
    import hilos.services
    import hilos.syn
    from hilos.output import FORMATS

    assert hilos.syn.SynScanner.__name__ == "SynScanner"
    assert callable(hilos.syn.syn_scan) and callable(hilos.syn.can_raw)
    assert hilos.services.BannerGrabber.__name__ == "BannerGrabber"
    assert callable(hilos.services.identify)
    assert FORMATS["xml"].writer.__name__ == "XmlWriter"
    assert {f.writer.__module__ for f in FORMATS.values()} >= {"hilos.output.text"}
