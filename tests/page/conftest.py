"""The page tests keep one screenshot per case; this prints where they are."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

#: Where the screenshots go: $ROLLOUT_PAGE_ARTIFACTS, else a fixed directory under /tmp.
ARTIFACTS = Path(os.environ.get("ROLLOUT_PAGE_ARTIFACTS")
                 or Path(tempfile.gettempdir()) / "rollout-page-artifacts")  # fmt: skip


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    shots = sorted(ARTIFACTS.glob("*.png")) if ARTIFACTS.is_dir() else []
    if shots:
        terminalreporter.write_line(
            f"report page screenshots and pages ({len(shots)}): {ARTIFACTS}"
        )
