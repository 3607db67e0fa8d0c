"""Copying a SQLite ledger's history into another ledger (PostgreSQL, or another file)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rollout.commands.running import ledger_knowledge
from rollout.errors import UsageError
from rollout.fleetrecord import Record
from rollout.ledger import Ledger, RunStatus
from rollout.ledgercopy import copy_history

REPO = Path(__file__).resolve().parents[2]


def _history(path: Path) -> list[str]:
    """A small real history: two runs, a phase with soak, a pause, an approval, an unlock."""
    with Ledger(path, who="alice", where="laptop") as old:
        first = old.start_run("prod", "deploy --phase 1", ["deploy", "--phase", "1"])
        lock = old.acquire_lock("prod", "deploy", first.id)
        intent = old.intent(first.id, "web-1", "set_flags", 1, {"state": {"a": True}})
        old.settle(intent.id, True, {"flags": {"a": True}})
        old.event(first.id, "verify", {"ok": True}, host="web-1")
        old.set_phase("prod", 1, first.id, soak_required=60)
        old.count_soak("prod", 60)
        old.finish_run(first.id, RunStatus.SUCCEEDED, "phase 1 applied")
        old.release_lock(lock)
        second = old.start_run("prod", "rollback", ["rollback"])
        old.intent(second.id, "web-2", "set_flags", 0, {})  # left open: crash evidence
        old.finish_run(second.id, RunStatus.FAILED, "failed")
        old.approve("prod", 2, "bob", "looks good")
        old.set_paused("prod", True, "carol", "freeze")
        return [first.id, second.id]


def test_copy_keeps_runs_ids_events_state_and_is_idempotent(
    tmp_path: Path, ledger_target: str
) -> None:
    """After a copy the destination shows the same runs (same ids, who, where), events,
    intents (open ones stay open), phase, soak, pause and approvals; a second copy adds
    nothing."""
    source = tmp_path / "old.db"
    ids = _history(source)
    with Ledger(source) as src, Ledger(ledger_target) as dst:
        report = copy_history(src, dst)
        assert (report.runs, report.skipped_runs, report.inventories) == (2, 0, 1)
        assert [r.id for r in dst.runs("prod")] == [r.id for r in src.runs("prod")] == ids[::-1]
        assert dst.runs("prod") == src.runs("prod")
        for run_id in ids:
            assert [(e.kind, e.host, e.data) for e in dst.events(run_id)] == [
                (e.kind, e.host, e.data) for e in src.events(run_id)
            ]

            def shape(book: Ledger, run: str) -> list[tuple[object, ...]]:
                return [(i.host, i.action, i.ok, i.detail, i.result) for i in book.intents(run)]

            assert shape(dst, run_id) == shape(src, run_id)
        assert [i.host for i in dst.open_intents("prod")] == ["web-2"]
        assert dst.state("prod") == src.state("prod")
        assert [(a.who, a.note) for a in dst.approvals("prod", 2)] == [("bob", "looks good")]
        kinds = [e.kind for e in dst.inventory_events("prod") if e.run_id is None]
        assert kinds == [e.kind for e in src.inventory_events("prod") if e.run_id is None]
        again = copy_history(src, dst)
        assert (again.runs, again.skipped_runs, again.events, again.approvals) == (0, 2, 0, 0)
        assert len(dst.inventory_events("prod")) == len(src.inventory_events("prod"))


def test_a_source_with_a_run_in_progress_is_refused(tmp_path: Path, ledger_target: str) -> None:
    """A copy of a ledger whose lock is held would miss the rest of that run: refused."""
    source = tmp_path / "busy.db"
    with Ledger(source) as src:
        run = src.start_run("prod", "deploy", ["deploy"])
        src.acquire_lock("prod", "deploy", run.id)
        with Ledger(ledger_target) as dst:
            with pytest.raises(UsageError, match="run in progress"):
                copy_history(src, dst)
            assert dst.runs() == []


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_task_copies_into_postgresql_and_history_shows_the_runs(
    tmp_path: Path, ledger_target: str
) -> None:
    """`invoke ledger.copy --src FILE --dest URI` then `invoke history --ledger URI` lists the
    SQLite ledger's runs; the URI's password never appears in the output."""
    source = tmp_path / "old.db"
    ids = _history(source)
    inventory = tmp_path / "prod.yml"
    # records keyed "prod" (the old stem key): the inventory claims them (issue 11)
    inventory.write_text(
        "all:\n  vars: {rollout_fleet: prod}\n  hosts:\n    web-1: {ansible_host: 127.0.0.1}\n"
    )
    copy = subprocess.run(
        [sys.executable, "-m", "invoke", "ledger.copy", "--src", str(source),
         "--dest", ledger_target],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert copy.returncode == 0, copy.stderr
    assert "copied 2 run(s)" in copy.stdout
    with Ledger(ledger_target) as dst:
        names = {r.inventory for r in dst.runs()}
    assert names == {"prod"}
    history = subprocess.run(
        [sys.executable, "-m", "invoke", "history", "--inventory", str(inventory),
         "--ledger", ledger_target],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert history.returncode == 0, history.stderr
    assert all(run_id in history.stdout for run_id in ids), history.stdout
    assert "alice@laptop" in history.stdout
    password_uri = ledger_target.replace("rollout@", "rollout:s3cret-pw@")
    failing = subprocess.run(
        [sys.executable, "-m", "invoke", "history", "--inventory", str(inventory),
         "--ledger", password_uri.replace("/sock", "/nowhere")],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert failing.returncode == 2 and "cannot connect" in failing.stderr
    assert "s3cret-pw" not in failing.stdout + failing.stderr


def _record(ledger: str, run_id: str, generation: int) -> Record:
    return Record(rollout="otp", run_id=run_id, who="alice", where="laptop", ledger=ledger,
                  ledger_path="old.db", command="deploy", action="apply", phase=1,
                  generation=generation, changed=0.0)  # fmt: skip


def test_the_copy_knows_the_hosts_records_its_copied_runs_wrote(
    tmp_path: Path, ledger_target: str
) -> None:
    """After `ledger.copy` the destination is the same history: a host record written by a
    copied run (under the source ledger's id) is known without `invoke adopt`; a record of a
    source run made after the copy is not (another controller's change) until it is copied
    too; and what the source had adopted stays adopted."""
    source = tmp_path / "old.db"
    ids = _history(source)
    with Ledger(source) as src, Ledger(ledger_target) as dst:
        src.adopt("prod", {"web-9": (7, "r-other", "lg-someone")}, None)
        before = ledger_knowledge(dst, "prod")
        copied = _record(src.identity, ids[0], 3)
        assert not before.knows("web-1", copied)
        copy_history(src, dst)
        knowledge = ledger_knowledge(dst, "prod")
        assert knowledge.knows("web-1", copied)
        later = src.start_run("prod", "deploy --phase 2", ["deploy", "--phase", "2"])
        src.finish_run(later.id, RunStatus.SUCCEEDED, "phase 2 applied")
        assert not knowledge.knows("web-1", _record(src.identity, later.id, 4))
        assert not knowledge.knows("web-1", _record("lg-someone-else", ids[0], 4))
        assert knowledge.knows("web-9", _record("lg-someone", "r-other", 7))
        assert not knowledge.knows("web-9", _record("lg-someone", "r-newer", 8))
        copy_history(src, dst)
        assert ledger_knowledge(dst, "prod").knows("web-1", _record(src.identity, later.id, 4))
