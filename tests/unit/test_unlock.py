"""`invoke unlock` of a live run's lock on this machine, and a run that lost its lock."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rollout.clock import PartsClock
from rollout.errors import RightLost
from rollout.inventory import load_inventory
from rollout.ledger import Ledger
from rollout.testing import clock_of, fake_context, fake_fleet

REPO = Path(__file__).resolve().parents[2]
INVOKE = str(Path(sys.executable).parent / "invoke")


def test_unlock_of_a_live_local_holder_needs_force(tmp_path: Path) -> None:
    """The lock of a live process on this machine is refused (exit 8, naming its run) unless
    --force; with --force it is removed."""
    inventory = tmp_path / "fleet.yml"
    inventory.write_text("all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.1\n")
    ledger_path = tmp_path / "ledger.db"
    key = load_inventory(inventory).name  # the fleet's identity (issue 11), not the stem
    with Ledger(ledger_path, pid=os.getpid()) as ledger:
        run = ledger.start_run(key, "invoke deploy --phase 1", ())
        lock = ledger.acquire_lock(key, "invoke deploy --phase 1", run.id)

    def unlock(*extra: str) -> subprocess.CompletedProcess[str]:
        argv = [INVOKE, "unlock", lock.id, "--inventory", str(inventory), "--ledger",
                str(ledger_path), *extra]  # fmt: skip
        return subprocess.run(argv, cwd=REPO, text=True, capture_output=True, timeout=60)

    refused = unlock()
    assert refused.returncode == 8, refused.stderr
    assert "live run" in refused.stderr and run.id in refused.stderr and "--force" in refused.stderr
    with Ledger(ledger_path) as ledger:
        assert ledger.holder(key) is not None
    forced = unlock("--force")
    assert forced.returncode == 0, forced.stderr
    with Ledger(ledger_path) as ledger:
        assert ledger.holder(key) is None


def test_run_whose_lock_was_removed_changes_nothing_more(tmp_path: Path) -> None:
    """Once its lock is gone, a run's next change raises RightLost and no host is touched."""
    from rollout.commands.running import running
    from rollout.plan import Action
    from rollout.playbook import load_playbook

    playbook = load_playbook(str(REPO / "playbooks" / "otp_refactor.yml"))
    fleet = fake_fleet(["h1", "h2"], playbook.flags)
    ctx = fake_context(tmp_path, playbook, fleet)
    with running(ctx, "invoke deploy --phase 1") as (_run, lock, ex):
        ctx.ledger.unlock(ctx.inventory.name, lock.id)
        try:
            ex.converge(["h1", "h2"], playbook.phase(1), Action.DEPLOY)
        except RightLost as exc:
            assert "was removed" in exc.message
        else:
            raise AssertionError("the run went on without its lock")
    assert all(fake.applies == 0 for fake in fleet.fakes.values())


def test_soak_polls_beat_the_lock_and_stop_once_it_is_taken(tmp_path: Path) -> None:
    """Every soak poll refreshes the ledger lock's heartbeat; once another run takes the lock
    over, the next poll raises RightLost before sampling or repairing any host."""
    from rollout.commands.monitoring import make_soak
    from rollout.commands.running import running
    from rollout.playbook import load_playbook

    now = [1_000_000.0]
    playbook = load_playbook(str(REPO / "playbooks" / "otp_refactor.yml"))
    fleet = fake_fleet(["h1", "h2"], playbook.flags)
    ctx = fake_context(tmp_path, playbook, fleet, clock=clock_of(lambda: now[0]))
    with running(ctx, "invoke monitor") as (run, lock, ex):
        ctx.ledger.set_phase("inv", 1, run.id, soak_required=60.0)
        soak = make_soak(ctx, ex, playbook.phase(1), playbook.phase(0))
        now[0] += 5
        soak.poll()
        holder = ctx.ledger.holder("inv")
        assert holder is not None and holder.heartbeat == now[0] > lock.started
        other = Ledger(ctx.ledger.path, clock=PartsClock(wall=lambda: now[0]))
        other.acquire_lock("inv", "invoke rollback --emergency", takeover=True)
        for fake in fleet.fakes.values():
            fake.restart()  # drift a repair would re-apply
        before = {name: fake.applies for name, fake in fleet.fakes.items()}
        try:
            soak.poll()
        except RightLost as exc:
            assert "rollback --emergency" in exc.message
        else:
            raise AssertionError("the soak went on without its lock")
        assert {name: fake.applies for name, fake in fleet.fakes.items()} == before


def test_a_signal_held_while_a_run_closes_is_said(tmp_path: Path) -> None:
    """A second signal that lands while a run writes its outcome is held (Cancel.closing);
    the run's events then say so, and the outcome is still written."""
    import signal

    from rollout.commands.running import running
    from rollout.events import Kind
    from rollout.playbook import load_playbook

    playbook = load_playbook(str(REPO / "playbooks" / "otp_refactor.yml"))
    fleet = fake_fleet(["h1"], playbook.flags)
    ctx = fake_context(tmp_path, playbook, fleet)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    closed = fleet.close

    def close_with_a_signal() -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # lands inside Cancel.closing
        closed()

    fleet.close = close_with_a_signal  # type: ignore[method-assign]
    try:
        ctx.cancel.install()
        ctx.cancel.set("SIGINT")  # the first signal: the run is already settling
        with running(ctx, "invoke deploy --phase 1") as (run, _lock, _ex):
            pass
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert ctx.cancel.late
    warnings = [e for e in ctx.emit.events if e.kind is Kind.WARNING]
    assert any("second signal" in e.message for e in warnings), warnings
    assert ctx.ledger.run(run.id).status.value == "succeeded"
