"""Tests of hilos.bench.plot: the PNG, and the checks made before a long measurement."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hilos import bench
from hilos.errors import HilosError, UsageError

pytestmark = pytest.mark.timeout(120)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_is_a_valid_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    result = bench.run_bench(bench.demo_workload(tasks=8, sleep=0.005), (2, 4), repeat=1)
    path = tmp_path / "speedup.png"
    bench.write_plot(result, str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(str(path))
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert image.std() > 0.05  # not a blank canvas


def test_plot_to_an_unwritable_place_is_one_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = bench.run_bench(bench.demo_workload(tasks=2, sleep=0.0), (1,), repeat=1)
    with pytest.raises(HilosError, match="cannot write"):
        bench.write_plot(result, str(tmp_path / "missing-dir" / "x.png"))


def test_check_plot_path_refuses_before_measuring(tmp_path: Path) -> None:
    bench.check_plot_path(str(tmp_path / "ok.png"))  # a new file in a writable directory
    for where, message in [
        ("", "needs a file name"),
        (str(tmp_path / "nope" / "x.png"), "does not exist"),
        (str(tmp_path), "is a directory"),
    ]:
        with pytest.raises(UsageError, match=message):
            bench.check_plot_path(where)


def test_require_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(HilosError, match=r"pip install 'hilos\[plot\]'"):
        bench.require_matplotlib()
