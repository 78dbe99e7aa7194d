"""Scans spread over a Dask cluster (the optional extra ``hilos[cluster]``).

`hilos cluster certs` makes the mutual-TLS certificates (certs), `hilos cluster scheduler`
and `hilos cluster worker` start the members (daemons; workers run tasks), and `--cluster` on
scan runs a hilos.resume ChunkedJob through the DaskExecutor (client). Addresses are checked
in security. This package imports hilos.resume and the pipeline, never the command line.
"""

from __future__ import annotations

import importlib

from hilos.errors import UsageError

__all__ = ["EXTRA", "require_distributed"]

EXTRA = "hilos[cluster]"


def require_distributed() -> None:
    """A UsageError naming the extra to install when Dask's distributed (or cryptography)
    is missing."""
    for module in ("distributed", "cryptography"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise UsageError(
                f"--cluster needs the {module} package: pip install '{EXTRA}'"
            ) from None
