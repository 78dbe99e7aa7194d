"""Run the command line as `python -m hilos`."""

from __future__ import annotations

import sys

from hilos.cli import main

if __name__ == "__main__":
    sys.exit(main())
