"""The PostgreSQL ledger goes away under a running controller: its connection is dropped by
the server, or the server stops, in the middle of a soak. The run must not claim success,
must change no host after the loss, and must leave the fleet at a verified phase."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rollout.ledger import Ledger, RunStatus
from rollout_lab import Lab
from rollout_lab.postgres import Cluster
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from ..e2e.cli import CLI
from .helpers import Watched, assert_consistent, fault_playbook, kind

pytestmark = pytest.mark.fault
LAB_HOSTS = 2


@pytest.fixture
def shared(pg_cluster: Cluster, clean_lab: Lab, tmp_path: Path) -> Iterator[tuple[str, CLI]]:
    """A fresh PostgreSQL ledger and a controller using it; the server is running after."""
    uri = pg_cluster.create_database()
    cli = CLI(clean_lab.inventory, tmp_path / "unused.db", env={"ROLLOUT_LEDGER": uri})
    try:
        yield uri, cli
    finally:
        try:
            psycopg.connect(pg_cluster.socket_uri("postgres"), connect_timeout=2).close()
        except psycopg.Error:
            pg_cluster.pg_ctl("start")


def _soaking(tmp_path: Path) -> Path:
    def edit(data: dict[str, object]) -> None:
        for phase in data["phases"]:  # type: ignore[attr-defined]
            phase["soak"] = "60s"
            phase.pop("gates", None)
        data["health"]["interval"] = "1s"  # type: ignore[index]

    return fault_playbook(tmp_path / "p.yml", edit=edit)


def _drop_connections(cluster: Cluster, dbname: str) -> None:
    with psycopg.connect(cluster.socket_uri("postgres"), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'rollout'",
            (dbname,),
        )


@pytest.mark.scenario("ledger connection dropped mid-soak")
def test_a_dropped_ledger_connection_mid_soak_fails_the_run_and_keeps_the_fleet(
    shared: tuple[str, CLI], pg_cluster: Cluster, clean_lab: Lab, tmp_path: Path
) -> None:
    """The server kills the controller's session while it soaks phase 1: the run fails
    (never "succeeded"), says it lost the ledger, changes no host, and records what it can
    after reconnecting (the run is closed as failed, the phase stays 1, the soak incomplete)."""
    uri, cli = shared
    playbook = _soaking(tmp_path)
    run = Watched(cli, "deploy", "--phase", "1", "--yes", "--skip-checks", playbook=playbook)
    dbname = uri.split("/")[3].split("?")[0]
    run.when(kind("sample"), lambda _e: _drop_connections(pg_cluster, dbname))
    done = run.finish(timeout=120)
    assert done.code not in (0, 3), done.text
    assert "lost the connection to the ledger database" in done.stderr, done.text
    assert not [e for e in done.of("run.finish") if e.get("ok")]
    assert not [e for e in done.events if e.get("event") in ("host.apply", "rollback", "undo")
                and e["ts"] > done.of("sample")[0]["ts"]]  # fmt: skip
    assert assert_consistent(clean_lab, {1}) == {h.name: 1 for h in clean_lab.hosts}
    with Ledger(uri) as ledger:
        [record] = ledger.runs()
        assert record.status is not RunStatus.SUCCEEDED
        state = ledger.state(record.inventory)
        assert state.phase == 1 and not state.soak_complete
        assert ledger.holder(record.inventory) is None or ledger.reap(record.inventory)


@pytest.mark.scenario("ledger server stopped mid-soak")
def test_a_stopped_ledger_server_mid_soak_fails_the_run_and_keeps_the_fleet(
    shared: tuple[str, CLI], pg_cluster: Cluster, clean_lab: Lab, tmp_path: Path
) -> None:
    """The database server stops (immediate shutdown) while phase 1 soaks: the run exits
    non-zero without claiming success, the hosts stay at the verified phase 1, and once the
    server is back the ledger shows the run as interrupted (its session ended) and the next
    controller takes the lock over without `unlock`."""
    uri, cli = shared
    playbook = _soaking(tmp_path)
    run = Watched(cli, "deploy", "--phase", "1", "--yes", "--skip-checks", playbook=playbook)
    run.when(kind("sample"), lambda _e: pg_cluster.pg_ctl("stop", "-m", "immediate"))
    done = run.finish(timeout=120)
    assert done.code not in (0, 3), done.text
    assert "ledger database" in done.stderr and "Traceback" not in done.stderr, done.text
    assert not [e for e in done.of("run.finish") if e.get("ok")]
    assert assert_consistent(clean_lab, {1}) == {h.name: 1 for h in clean_lab.hosts}
    pg_cluster.pg_ctl("start")
    with Ledger(uri) as ledger:
        [record] = ledger.runs()
        assert record.status is RunStatus.RUNNING  # never recorded as finished, let alone ok
        assert [r.id for r in ledger.interrupted_runs(record.inventory)] == [record.id]
        assert ledger.state(record.inventory).phase == 1
    status = cli("status", playbook=playbook)
    assert status.code == 0, status.stdout + status.stderr
    again = cli("deploy", "--phase", "1", "--yes", "--no-wait", "--skip-checks", playbook=playbook)
    assert again.code == 0, again.stdout + again.stderr
    assert "died without finishing" in again.stdout + again.stderr


def _delete_ledger(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


@pytest.mark.scenario("SQLite ledger deleted mid-soak")
def test_a_deleted_sqlite_ledger_mid_soak_fails_loudly(clean_lab: Lab, tmp_path: Path) -> None:
    """The ledger file is deleted while phase 1 soaks: the run fails loudly, saying the file
    was deleted, instead of reporting success into an unlinked inode; no host changes after,
    and the fleet stays at the verified phase 1."""
    ledger = tmp_path / "state" / "ledger.db"
    cli = CLI(clean_lab.inventory, ledger)
    playbook = _soaking(tmp_path)
    run = Watched(cli, "deploy", "--phase", "1", "--yes", "--skip-checks", playbook=playbook)
    run.when(kind("sample"), lambda _e: _delete_ledger(ledger))
    done = run.finish(timeout=120)
    assert done.code not in (0, 3), done.text
    assert "was deleted during this run" in done.stderr, done.text
    assert not [e for e in done.of("run.finish") if e.get("ok")]
    assert not [e for e in done.events if e.get("event") in ("host.apply", "rollback", "undo")
                and e["ts"] > done.of("sample")[0]["ts"]]  # fmt: skip
    assert assert_consistent(clean_lab, {1}) == {h.name: 1 for h in clean_lab.hosts}
    assert not ledger.exists()
