"""Shared test setup: privilege gates for root/lab tests (skipped unprivileged, required in CI)."""

from __future__ import annotations

import os

import pytest

IS_ROOT = os.geteuid() == 0
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    for item in items:
        if item.get_closest_marker("lab") or item.get_closest_marker("root"):
            if IN_CI:
                # In CI a skipped lab test is a failure: fail loudly instead of skipping.
                item.add_marker(pytest.mark.usefixtures("_fail_unprivileged_in_ci"))
            else:
                item.add_marker(pytest.mark.skip(reason="needs root and the lab (run as root)"))


@pytest.fixture
def _fail_unprivileged_in_ci() -> None:
    pytest.fail("lab/root test ran unprivileged in CI: CI must run as root")
