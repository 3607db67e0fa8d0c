"""Registers the fault-scenario summary (``summary.py``) unless start-up already loaded it."""

from __future__ import annotations

import pytest

from . import summary


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(summary):
        config.pluginmanager.register(summary, "fault-summary")
