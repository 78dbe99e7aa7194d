"""Names a package exports but loads only when first used (PEP 562's module __getattr__): a run
from the command line then imports the engines and formats it uses, not all of them (each
module is about a millisecond of every start)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for `package`: `where` maps each name to the module (full
    path) that defines it.

        __getattr__ = lazy_names(__name__, {"SynScanner": "hilos.syn.scanner"})
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return __getattr__
