"""Pytest fixtures and helpers for tests that need a real lab (sshd + Foundation nodes).

Each lab made here lives in its own directory under /tmp (which the lab user can reach), on
its own free ports, and is torn down and deleted afterwards. Use the fixtures from a test
module or a conftest::

    from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

    LAB_HOSTS = 3          # optional: hosts in this module's lab (default 2)

    def test_something(clean_lab: Lab) -> None: ...

or load the whole module as a plugin (``pytest_plugins = ["rollout_lab.testing"]`` in the
root conftest). ``lab`` is one lab per test module; ``clean_lab`` is that lab with every
node and sshd running and every host reset (flags off, healthy metrics, no delay).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from . import control, procs
from .manager import down, up
from .model import Lab

DEFAULT_HOSTS = 2


def lab_dir(prefix: str = "rollout-lab-") -> Path:
    """A fresh directory under /tmp that the lab user can traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


#: Ports each pytest-xdist worker searches, so parallel workers never race for the same ones.
WORKER_PORTS = 400


def free_base_port(
    hosts: int, start: int | None = None, stop: int | None = None, step: int = 20
) -> int:
    """The first base port from ``start`` with ``base .. base + hosts`` all free.

    ``start`` defaults to ``ROLLOUT_LAB_PORT_BASE`` (else 2300), so two test runs on one
    machine (two checkouts) can be given disjoint ranges. Under pytest-xdist each worker
    (``gwN``) searches its own range of ``WORKER_PORTS``.
    """
    if start is None:
        start = int(os.environ.get("ROLLOUT_LAB_PORT_BASE") or 2300)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        start += int(worker[2:]) * WORKER_PORTS
    stop = stop if stop is not None else start + WORKER_PORTS
    for base in range(start, stop, step):
        if all(procs.port_free(port) for port in range(base, base + hosts + 1)):
            return base
    raise RuntimeError(f"no {hosts + 1} free consecutive ports in {start}..{stop}")


@contextmanager
def running_lab(
    hosts: int = DEFAULT_HOSTS,
    *,
    base_port: int | None = None,
    with_release: bool = True,
    log: Callable[[str], None] | None = None,
) -> Iterator[Lab]:
    """A lab of ``hosts`` hosts in a temp dir; stopped and deleted on exit, even on failure."""
    root = lab_dir()
    quiet: Callable[[str], None] = log or (lambda _line: None)
    try:
        yield up(
            hosts,
            root=root,
            inventory=root / "inventory.yml",
            base_port=base_port or free_base_port(hosts),
            log=quiet,
            with_release=with_release,
        )
    finally:
        down(root, purge=True, log=quiet)


def reset(lab: Lab) -> None:
    """Every sshd and node of ``lab`` running and unfrozen; every host back to its defaults,
    with no fleet record or lease."""
    for host in lab.hosts:
        if control.sshd_pid(host) is None:
            control.start_sshd(host)
        else:
            control.signal_sshd(host, signal.SIGCONT)  # a test may have frozen it
        if host.with_release:
            if control.node_pid(host) is None:
                control.start_node(host)
            else:
                control.signal_node(host, signal.SIGCONT)
        control.reset_host(host)  # an SSH-only host: its stub's flag and metric files
        # the fleet-side record and lease (rollout.fleetstate) outlive a node restart by
        # design; a clean host has none, so each test's controllers start from a fresh fleet
        shutil.rmtree(host.release_bin.parent.parent / ".rollout-state", ignore_errors=True)


@pytest.fixture(scope="module", name="lab")
def lab_fixture(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A running lab for the whole test module (``LAB_HOSTS`` in the module sets its size)."""
    hosts = int(getattr(request.module, "LAB_HOSTS", DEFAULT_HOSTS))
    with running_lab(hosts) as lab:
        yield lab


@pytest.fixture(name="clean_lab")
def clean_lab_fixture(lab: Lab) -> Lab:
    """The module's lab, reset before the test: everything running, flags off, metrics healthy."""
    reset(lab)
    return lab
