"""Old name of hilos.lab.services (the lab's fake servers), kept so `python -m hilos.labsvc` and
`from hilos.labsvc import describe` keep working."""

from __future__ import annotations

import sys

from hilos.lab.services import (
    BACKLOG,
    DEFAULT_IDLE_TIMEOUT,
    FLOOD_BYTES,
    FLOOD_PATTERN,
    KINDS,
    LabServer,
    Service,
    Spec,
    describe,
    load_spec,
    main,
    parse_spec,
)

__all__ = [
    "BACKLOG",
    "DEFAULT_IDLE_TIMEOUT",
    "FLOOD_BYTES",
    "FLOOD_PATTERN",
    "KINDS",
    "LabServer",
    "Service",
    "Spec",
    "describe",
    "load_spec",
    "main",
    "parse_spec",
]

if __name__ == "__main__":
    sys.exit(main())
