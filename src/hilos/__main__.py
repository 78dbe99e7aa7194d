"""Run the command line as `python -m hilos`."""

from __future__ import annotations

import contextlib
import os
import sys

from hilos.cli import main

# Libraries that leave work for the interpreter's exit (Dask's client and scheduler close their
# connections, multiprocessing joins its helpers): with them loaded, exit the normal way.
_EXIT_WORK = ("distributed", "dask", "multiprocessing", "concurrent.futures", "asyncio")

if __name__ == "__main__":
    code = main()
    if not any(name in sys.modules for name in _EXIT_WORK):
        # Every output is written, flushed and closed by now (main's final flush). A scan of a
        # million probes leaves millions of objects that the teardown frees one by one
        # (~0.1 s); nothing of ours needs it.
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
