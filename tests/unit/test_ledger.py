"""The ledger: runs, events, intents, crash evidence, phase and soak, pause, approvals, schema.

The contract runs on both stores (``ledger_target``: a SQLite file, a PostgreSQL database);
the few tests about the SQLite file itself pin ``backend`` to ``sqlite``.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rollout.clock import PartsClock
from rollout.database import open_database
from rollout.errors import RolloutError, UsageError
from rollout.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger, RunStatus, migrate

T0 = 1_795_407_120.0  # 2026-11-23T04:12:00Z
REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """A settable clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


MakeLedger = Callable[..., Ledger]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def procs() -> dict[int, str]:
    """The fake process table: pid -> start time; absent pids are dead."""
    return {100: "5000", 200: "6000"}


@pytest.fixture
def make(ledger_target: str, clock: FakeClock, procs: dict[int, str]) -> Iterator[MakeLedger]:
    opened: list[Ledger] = []

    def factory(who: str = "alice", where: str = "deploy-1", pid: int = 100) -> Ledger:
        ledger = Ledger(
            ledger_target,
            clock=PartsClock(wall=clock), who=who, where=where, pid=pid, probe=procs.get,
        )  # fmt: skip
        opened.append(ledger)
        return ledger

    yield factory
    for ledger in opened:
        ledger.close()


@pytest.fixture
def ledger(make: MakeLedger) -> Ledger:
    return make()


# -- runs and events ------------------------------------------------------------------------


def test_start_run_records_who_where_and_a_short_id(ledger: Ledger) -> None:
    """A new run is RUNNING, stamped with the clock, and gets an id like r-20261123-0412-3fa2."""
    run = ledger.start_run("prod", "deploy --phase 3", ["deploy", "--phase", "3"], reason="go")
    assert re.fullmatch(r"r-20261123-0412-[0-9a-f]{4}", run.id)
    assert (run.who, run.where, run.pid, run.started) == ("alice", "deploy-1", 100, T0)
    assert run.status is RunStatus.RUNNING and run.finished is None and run.reason == "go"
    assert run.argv == ("deploy", "--phase", "3")
    assert ledger.run(run.id) == run


def test_finish_run_sets_status_time_and_summary(ledger: Ledger, clock: FakeClock) -> None:
    """Finishing a run stores its final status, finish time and summary."""
    run = ledger.start_run("prod", "deploy", ["deploy"])
    clock.now += 12
    done = ledger.finish_run(run.id, RunStatus.SUCCEEDED, "3 hosts at phase 3")
    assert (done.status, done.finished, done.summary) == (
        RunStatus.SUCCEEDED,
        T0 + 12,
        done.summary,
    )
    assert ledger.run(run.id) == done


def test_finish_run_twice_is_refused(ledger: Ledger) -> None:
    """A finished run cannot be finished again, and RUNNING is not a final status."""
    run = ledger.start_run("prod", "deploy", ["deploy"])
    with pytest.raises(ValueError):
        ledger.finish_run(run.id, RunStatus.RUNNING)
    ledger.finish_run(run.id, RunStatus.FAILED)
    with pytest.raises(UsageError, match="already finished as failed"):
        ledger.finish_run(run.id, RunStatus.SUCCEEDED)


def test_runs_lists_newest_first_with_filter_and_limit(ledger: Ledger, clock: FakeClock) -> None:
    """``runs`` returns newest first, optionally for one inventory, at most ``limit``."""
    ids = []
    for inventory in ("prod", "staging", "prod"):
        ids.append(ledger.start_run(inventory, "status", ["status"]).id)
        clock.now += 1
    assert [r.id for r in ledger.runs()] == ids[::-1]
    assert [r.id for r in ledger.runs("prod")] == [ids[2], ids[0]]
    assert [r.id for r in ledger.runs(limit=1)] == [ids[2]]


def test_newest_events_reads_one_kind_since_a_time_newest_first_across_chunks(
    ledger: Ledger, clock: FakeClock
) -> None:
    """``newest_events`` yields only the inventory's events of the kind at or after ``since``,
    newest first, across chunk boundaries, and a reader may stop after the first."""
    prod = ledger.start_run("prod", "advance", ["advance"])
    other = ledger.start_run("staging", "advance", ["advance"])
    stamps = []
    for i in range(50):
        clock.now += 1
        ledger.event(prod.id, "sample", {"i": i})
        ledger.event(prod.id, "verify", {"i": i})
        ledger.event(other.id, "sample", {"i": i})
        stamps.append(clock.now)
    since = stamps[10]
    got = [e.data["i"] for e in ledger.newest_events("prod", "sample", since=since, chunk=7)]
    assert got == list(range(49, 9, -1))
    assert [e.data["i"] for e in ledger.newest_events("prod", "sample", chunk=7)][-1] == 0
    first = next(ledger.newest_events("prod", "verify"))
    assert (first.kind, first.data["i"]) == ("verify", 49)
    assert list(ledger.newest_events("prod", "sample", since=clock.now + 1)) == []


def test_unknown_run_names_the_id_and_points_at_history(ledger: Ledger) -> None:
    """Asking for a run the ledger lacks says which id and how to list real ones."""
    with pytest.raises(UsageError) as caught:
        ledger.run("r-20261123-0412-dead")
    assert "r-20261123-0412-dead" in str(caught.value) and "invoke history" in str(caught.value)


def test_events_store_json_payloads_in_order(ledger: Ledger, clock: FakeClock) -> None:
    """Events keep kind, host, timestamp and a JSON payload, oldest first."""
    run = ledger.start_run("prod", "deploy", ["deploy"])
    first = ledger.event(run.id, "batch.start", {"hosts": ["web-1", "web-2"], "n": 1})
    clock.now += 1
    second = ledger.event(run.id, "host.ok", {"status": RunStatus.SUCCEEDED}, host="web-1")
    assert ledger.events(run.id) == [first, second]
    assert second.data == {"status": "succeeded"} and second.host == "web-1"
    assert (second.ts, second.inventory, second.run_id) == (T0 + 1, "prod", run.id)


def test_event_for_unknown_run_is_refused(ledger: Ledger) -> None:
    """An event must belong to a run the ledger knows."""
    with pytest.raises(UsageError, match="r-x"):
        ledger.event("r-x", "oops")


# -- intents and crash evidence ---------------------------------------------------------------


def test_intent_then_settle(ledger: Ledger, clock: FakeClock) -> None:
    """An intent is open until settled; settling stores the outcome and the result detail."""
    run = ledger.start_run("prod", "deploy", ["deploy"])
    intent = ledger.intent(run.id, "web-1", "set_flags", 3, {"flags": {"new_ui": True}})
    assert ledger.open_intents("prod") == [intent]
    assert intent.finished is None and intent.ok is None and intent.started == T0
    clock.now += 2
    settled = ledger.settle(intent.id, True, {"read_back": {"new_ui": True}})
    assert (settled.ok, settled.finished) == (True, T0 + 2)
    assert settled.detail == {"flags": {"new_ui": True}}
    assert settled.result == {"read_back": {"new_ui": True}}
    assert ledger.open_intents("prod") == [] and ledger.intents(run.id) == [settled]


def test_settle_twice_or_unknown_is_refused(ledger: Ledger) -> None:
    """An intent settles once; an unknown intent id is a usage error."""
    run = ledger.start_run("prod", "deploy", ["deploy"])
    intent = ledger.intent(run.id, "web-1", "restart", None, {})
    ledger.settle(intent.id, False)
    with pytest.raises(UsageError, match="already settled as failed"):
        ledger.settle(intent.id, True)
    with pytest.raises(UsageError, match="#999"):
        ledger.settle(999, True)


def test_open_intents_are_per_inventory(ledger: Ledger) -> None:
    """Only unsettled intents of runs against the asked inventory are returned."""
    prod = ledger.start_run("prod", "deploy", ["deploy"])
    staging = ledger.start_run("staging", "deploy", ["deploy"])
    mine = ledger.intent(prod.id, "web-1", "set_flags", 1, {})
    ledger.intent(staging.id, "stg-1", "set_flags", 1, {})
    assert ledger.open_intents("prod") == [mine]


def test_interrupted_runs_on_this_host(make: MakeLedger, procs: dict[int, str]) -> None:
    """A RUNNING run here is interrupted when its pid is gone or reused, not while alive."""
    procs.update({300: "1", 301: "2"})
    alive = make(pid=100).start_run("prod", "deploy", ["deploy"])
    gone = make(pid=300).start_run("prod", "deploy", ["deploy"])
    reused = make(pid=301).start_run("prod", "deploy", ["deploy"])
    del procs[300]
    procs[301] = "7777"  # same pid, later start time: another process
    ledger = make()
    interrupted = {r.id for r in ledger.interrupted_runs("prod")}
    assert interrupted == {gone.id, reused.id} and alive.id not in interrupted


def test_interrupted_runs_on_another_host_need_a_missing_lock(make: MakeLedger) -> None:
    """A remote RUNNING run counts as interrupted only when it holds no lock."""
    remote = make(where="deploy-2", pid=4242)
    locked = remote.start_run("prod", "deploy", ["deploy"])
    remote.acquire_lock("prod", "deploy", locked.id)
    lockless = remote.start_run("prod", "deploy", ["deploy"])
    assert [r.id for r in make().interrupted_runs("prod")] == [lockless.id]


def test_reap_marks_crashed_and_keeps_intents_open(
    make: MakeLedger, procs: dict[int, str], clock: FakeClock
) -> None:
    """Reaping marks vanished runs CRASHED, journals why, and leaves their intents open."""
    procs[300] = "1"
    dead = make(pid=300)
    run = dead.start_run("prod", "deploy", ["deploy"])
    intent = dead.intent(run.id, "web-1", "set_flags", 2, {"flags": {"a": True}})
    del procs[300]
    clock.now += 60
    ledger = make()
    [reaped] = ledger.reap("prod")
    assert reaped.status is RunStatus.CRASHED and reaped.finished == T0 + 60
    assert reaped.summary == "crashed: pid 300 on deploy-1 is gone"
    assert ledger.run(run.id) == reaped
    assert ledger.open_intents("prod") == [intent]
    assert [e.kind for e in ledger.events(run.id)] == ["run.crashed"]
    assert ledger.reap("prod") == [] and ledger.interrupted_runs("prod") == []


def test_crashed_run_may_still_finish(make: MakeLedger) -> None:
    """A run reaped as CRASHED on a guess (remote, lockless) can still record its real end."""
    remote = make(where="deploy-2", pid=4242)
    run = remote.start_run("prod", "deploy", ["deploy"])
    make().reap("prod")
    assert remote.finish_run(run.id, RunStatus.SUCCEEDED).status is RunStatus.SUCCEEDED


def test_sigkill_leaves_the_in_flight_change_on_record(ledger_target: str) -> None:
    """SIGKILL between intent and settle leaves an open intent, a dead run and a stale lock."""
    path = ledger_target
    script = textwrap.dedent(
        """
        import os, signal, sys
        from rollout.ledger import Ledger
        ledger = Ledger(sys.argv[1])
        run = ledger.start_run("prod", "deploy --phase 1", ["deploy", "--phase", "1"])
        ledger.acquire_lock("prod", "deploy --phase 1", run.id)
        ledger.intent(run.id, "web-1", "set_flags", 1, {"flags": {"a": True}})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], cwd=REPO, check=False)
    assert proc.returncode == -9
    with Ledger(path) as ledger:
        [intent] = ledger.open_intents("prod")
        assert (intent.host, intent.action, intent.target_phase) == ("web-1", "set_flags", 1)
        [run] = ledger.interrupted_runs("prod")
        assert run.id == intent.run_id and run.status is RunStatus.RUNNING
        assert ledger.acquire_lock("prod", "status").stale


# -- phase, soak, pause, approvals ------------------------------------------------------------


def test_state_of_an_unknown_inventory_is_never_deployed(ledger: Ledger) -> None:
    """An inventory the ledger never saw has no phase, no soak and is not paused."""
    state = ledger.state("prod")
    assert state.phase is None and state.soak_phase is None and not state.soak_complete
    assert not state.paused and state.soak_required == 0.0


def test_set_phase_starts_a_soak_window(ledger: Ledger, clock: FakeClock) -> None:
    """Setting a phase records who set it and when, and opens a soak window at zero."""
    run = ledger.start_run("prod", "deploy --phase 1", ["deploy"])
    state = ledger.set_phase("prod", 1, run.id, soak_required=600)
    assert (state.phase, state.phase_run_id, state.phase_changed) == (1, run.id, T0)
    assert (state.soak_phase, state.soak_required, state.soak_counted) == (1, 600.0, 0.0)
    assert not state.soak_complete
    [event] = ledger.events(run.id)
    assert event.kind == "phase.set" and event.data == {"from": None, "to": 1, "soak_required": 600}


def test_count_soak_accumulates_clamps_and_completes(ledger: Ledger, clock: FakeClock) -> None:
    """Healthy seconds add up, never beyond the requirement, and completion is marked."""
    run = ledger.start_run("prod", "deploy", ["deploy"])
    ledger.set_phase("prod", 2, run.id, soak_required=100)
    clock.now += 40
    state = ledger.count_soak("prod", 40)
    assert (state.soak_counted, state.soak_updated, state.soak_complete) == (40.0, T0 + 40, False)
    state = ledger.count_soak("prod", 500, phase=2)
    assert state.soak_counted == 100.0 and state.soak_complete
    assert ledger.count_soak("prod", 5).soak_counted == 100.0


def test_set_phase_restarts_the_soak(ledger: Ledger) -> None:
    """A new phase (or re-applying one) resets the counted soak to zero."""
    run = ledger.start_run("prod", "deploy", ["deploy"])
    ledger.set_phase("prod", 1, run.id, soak_required=10)
    assert ledger.count_soak("prod", 10).soak_complete
    state = ledger.set_phase("prod", 2, run.id, soak_required=30)
    assert (state.soak_phase, state.soak_counted, state.soak_complete) == (2, 0.0, False)


def test_zero_soak_is_complete_at_once(ledger: Ledger) -> None:
    """A phase that needs no soak is complete as soon as it is set."""
    run = ledger.start_run("prod", "rollback --to 0", ["rollback"])
    assert ledger.set_phase("prod", 0, run.id, soak_required=0).soak_complete


def test_count_soak_refuses_bad_calls(ledger: Ledger) -> None:
    """Counting needs a deployed phase, the expected phase, and non-negative seconds."""
    with pytest.raises(UsageError, match="no deployed phase"):
        ledger.count_soak("prod", 1)
    run = ledger.start_run("prod", "deploy", ["deploy"])
    ledger.set_phase("prod", 3, run.id, soak_required=10)
    with pytest.raises(UsageError, match="soaking phase 3, not 2"):
        ledger.count_soak("prod", 1, phase=2)
    with pytest.raises(ValueError):
        ledger.count_soak("prod", -1)


def test_set_phase_checks_the_run(ledger: Ledger) -> None:
    """A phase change must name a known run of the same inventory."""
    with pytest.raises(UsageError, match="r-x"):
        ledger.set_phase("prod", 1, "r-x", soak_required=0)
    run = ledger.start_run("staging", "deploy", ["deploy"])
    with pytest.raises(UsageError, match="belongs to inventory 'staging'"):
        ledger.set_phase("prod", 1, run.id, soak_required=0)


def test_pause_and_resume(ledger: Ledger) -> None:
    """Pausing records who and why; resuming clears both; each is journaled."""
    state = ledger.set_paused("prod", True, "alice", "error budget spent")
    assert (state.paused, state.paused_by, state.paused_reason) == (
        True, "alice", "error budget spent",
    )  # fmt: skip
    state = ledger.set_paused("prod", False, "bob", None)
    assert (state.paused, state.paused_by, state.paused_reason) == (False, None, None)
    kinds = [e.kind for e in ledger.inventory_events("prod")]
    assert kinds == ["inventory.paused", "inventory.resumed"]


def test_approvals_count_until_the_next_phase_change(ledger: Ledger, clock: FakeClock) -> None:
    """Approvals for a phase count only if recorded after the latest phase change."""
    run = ledger.start_run("prod", "deploy", ["deploy"])
    ledger.set_phase("prod", 1, run.id, soak_required=0)
    ledger.approve("prod", 3, "carol", "too early")
    ledger.set_phase("prod", 2, run.id, soak_required=0)
    assert ledger.approvals("prod", 3) == []
    ledger.approve("prod", 3, "dave", "go")
    ledger.approve("prod", 4, "dave", None)
    [approval] = ledger.approvals("prod", 3)
    assert (approval.who, approval.note, approval.phase, approval.ts) == ("dave", "go", 3, T0)


def test_approval_before_any_deploy_counts(ledger: Ledger) -> None:
    """An approval on a never-deployed inventory counts for its first deploy."""
    ledger.approve("prod", 1, "carol", None)
    assert [a.who for a in ledger.approvals("prod", 1)] == ["carol"]


# -- the file ---------------------------------------------------------------------------------


def test_everything_persists_across_reopen(
    tmp_path: Path, clock: FakeClock, backend: str, ledger_target: str
) -> None:
    """Runs, events, intents, phase, soak and lock survive closing and reopening the ledger."""
    path = str(tmp_path / "deep" / "dir" / "ledger.db") if backend == "sqlite" else ledger_target
    wall = PartsClock(wall=clock)
    with Ledger(path, clock=wall, who="alice", where="h", pid=1, probe=lambda pid: "s") as a:
        run = a.start_run("prod", "deploy", ["deploy"])
        a.event(run.id, "note", {"x": 1})
        intent = a.intent(run.id, "web-1", "set_flags", 1, {})
        a.set_phase("prod", 1, run.id, soak_required=50)
        a.count_soak("prod", 20)
        lock = a.acquire_lock("prod", "deploy", run.id)
    with Ledger(path, clock=wall, who="bob", where="h", pid=2, probe=lambda pid: "s") as b:
        assert b.run(run.id) == run
        assert [e.kind for e in b.events(run.id)] == ["note", "phase.set"]
        assert b.open_intents("prod") == [intent]
        assert b.state("prod").soak_counted == 20.0
        assert b.holder("prod") == lock


@pytest.mark.parametrize("backend", ["sqlite"])
def test_schema_version_and_wal(ledger: Ledger) -> None:
    """A new file is at the current schema version and in WAL mode."""
    conn = sqlite3.connect(ledger.path)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        conn.close()
    assert ledger.schema_version == SCHEMA_VERSION == len(MIGRATIONS)


def test_migration_applies_only_missing_steps(tmp_path: Path) -> None:
    """Migrating an older file runs just the steps after its version, once."""
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        steps = [("CREATE TABLE a (x)",), ("CREATE TABLE b (x)",)]
        assert migrate(conn, steps[:1]) == 1
        assert migrate(conn, steps) == 2
        assert migrate(conn, steps) == 2  # nothing left: no "table b already exists"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"a", "b", "schema_version"} <= tables
    finally:
        conn.close()


def test_newer_schema_is_refused(ledger_target: str) -> None:
    """A store written by a newer tool is refused with advice to upgrade, not altered."""
    path = ledger_target
    Ledger(path).close()
    raw = open_database(path)
    raw.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    raw.close()
    with pytest.raises(RolloutError, match="newer than this tool") as caught:
        Ledger(path)
    assert caught.value.hint is not None and "upgrade" in caught.value.hint
    raw = open_database(path)
    assert raw.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION + 1,)
    raw.close()
