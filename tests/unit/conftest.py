"""Shared fixtures for the engine's flow tests on the fake backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.models import Playbook
from rollout.playbook import load_playbook
from rollout.testing import FakeBackend, FakeHost

REPO = Path(__file__).resolve().parents[2]
NAMES = ("h1", "h2", "h3")


@pytest.fixture
def playbook() -> Playbook:
    """The reference playbook."""
    return load_playbook(REPO / "playbooks" / "otp_refactor.yml")


@pytest.fixture
def fleet(playbook: Playbook) -> FakeBackend:
    """Three fake release hosts knowing the playbook's flags."""
    return FakeBackend({n: FakeHost(n, playbook.flags) for n in NAMES})
