"""hilos.lazy: a package's names resolved from their modules on first use, others refused."""

from __future__ import annotations

import sys

import pytest

from hilos.lazy import lazy_names


def test_a_name_loads_its_module_only_when_asked() -> None:
    getattr_ = lazy_names("pkg", {"dedent": "textwrap", "Fraction": "fractions"})
    sys.modules.pop("fractions", None)
    assert getattr_("dedent")("  x") == "x"
    assert "fractions" not in sys.modules
    assert getattr_("Fraction")(1, 2) * 2 == 1
    assert "fractions" in sys.modules


def test_an_unknown_name_is_an_attribute_error_naming_the_package() -> None:
    getattr_ = lazy_names("hilos.thing", {})
    with pytest.raises(AttributeError, match=r"module 'hilos\.thing' has no attribute 'nope'"):
        getattr_("nope")
    assert not hasattr(__import__("hilos.syn").syn, "nope")
