"""`python -m hilos.lab.services SPEC.json`: serve the spec's listeners until SIGTERM."""

from __future__ import annotations

import sys

from hilos.lab.services.server import main

sys.exit(main())
