"""Loading the UDP scan's numpy ahead of time, while the caller does other work."""

from __future__ import annotations

import threading

__all__ = ["preload_batched"]


def preload_batched() -> None:
    """Start importing numpy (the batched sender's, ~0.1 s) in a background thread, so a caller
    with other work first (host discovery) does not wait for it later. Only numpy, which
    imports no hilos module: no module import lock is shared with the caller's thread."""
    threading.Thread(target=_import_numpy, daemon=True, name="hilos-udp-preload").start()


def _import_numpy() -> None:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return  # VectorSend's own import says so, where it is needed
