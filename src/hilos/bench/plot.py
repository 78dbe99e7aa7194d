"""A benchmark's speed-up chart (matplotlib, optional), and the checks made before measuring."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hilos.errors import HilosError, UsageError

if TYPE_CHECKING:
    from hilos.bench.runner import BenchResult

__all__ = ["check_plot_path", "require_matplotlib", "write_plot"]


def require_matplotlib() -> None:
    """Raise HilosError with the install hint unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise HilosError("--plot needs matplotlib: pip install 'hilos[plot]'") from exc


def check_plot_path(path: str) -> None:
    """Raise UsageError now if `path` cannot be written, not after minutes of measuring.

    The directory must exist and be writable, and the path must not be a directory.
    """
    import os

    if not path:
        raise UsageError("--plot needs a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--plot {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--plot {path}: is a directory")
    if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"--plot {path}: not writable")


def write_plot(result: BenchResult, path: str) -> None:
    """Write a PNG of speed-up against threads, with the ideal line and the knee marked.

    Needs matplotlib (``pip install 'hilos[plot]'``); raises HilosError without it.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    except ImportError as exc:
        raise HilosError("--plot needs matplotlib: pip install 'hilos[plot]'") from exc

    threads = [r.threads for r in result.rows]
    speedups = [r.speedup for r in result.rows]
    top = max(threads)
    fig = Figure(figsize=(7.0, 4.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.plot(threads, speedups, marker="o", color="tab:blue", linewidth=2, label="measured")
    # Drawn after the measured line so it stays visible where the two coincide (sleep-bound).
    ax.plot([1, top], [1, top], linestyle="--", color="0.45", label="ideal (speed-up = threads)")
    for r in result.rows:
        ax.annotate(
            f"{r.speedup:.1f}x",
            (r.threads, r.speedup),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
            color="tab:blue",
        )
    if result.knee is not None:
        knee = result.row(result.knee)
        ax.plot(
            [knee.threads],
            [knee.speedup],
            marker="o",
            markersize=16,
            markerfacecolor="none",
            markeredgecolor="tab:red",
            markeredgewidth=2,
            linestyle="none",
            label=f"knee: {knee.threads} thread{'s' if knee.threads > 1 else ''}",
        )
    else:
        ax.plot([], [], linestyle="none", label=f"no knee up to {top} threads")
    plain = FuncFormatter(lambda value, _pos: f"{value:g}")
    ticks = [float(t) for t in threads]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(plain)
    low = min(0.5, min(speedups) / 1.5)
    ax.set_ylim(low, top * 1.6)
    y_ticks = [2.0**k for k in range(-3, 13) if low <= 2.0**k <= top * 1.6]
    ax.yaxis.set_major_locator(FixedLocator(y_ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(plain)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("worker threads")
    ax.set_ylabel("speed-up over 1 thread")
    fig.suptitle(f"hilos bench --workload {result.workload}", fontsize=12)
    ax.set_title(f"{result.description}; median of {result.repeat}", fontsize=8.5, color="0.35")
    ax.legend(loc="upper left", fontsize=9)
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise HilosError(f"--plot: cannot write {path}: {exc.strerror or exc}") from exc
