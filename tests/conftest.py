"""Root test configuration: the fault suite's per-scenario summary, also under xdist, and the
throwaway PostgreSQL cluster the ledger's contract tests run against.

The cluster (``rollout_lab.postgres``) is started lazily, once per pytest process (each xdist
worker gets its own, on its own ports), by the first test that asks for it, and stopped at
the end of the session. ``ledger_target`` parametrizes a test over both stores: a SQLite file
path, or the URI of a fresh PostgreSQL schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout_lab.postgres import Cluster

pytest_plugins = ["tests.fault.summary"]

# Hermetic: no test reads the real ~/.ssh/config unless it passes --ssh-config itself.
os.environ.setdefault("ROLLOUT_SSH_CONFIG", "none")

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL cluster for this test process (Unix socket + 127.0.0.1 only)."""
    with Cluster.started() as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which ledger store the test runs against."""
    return str(request.param)


@pytest.fixture
def ledger_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new, empty ledger on ``backend``: a file path, or a fresh PostgreSQL schema's URI."""
    if backend == "sqlite":
        return str(tmp_path / "state" / "ledger.db")
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    return cluster.create_schema()
