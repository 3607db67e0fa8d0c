"""Deploy, rollback and status flows on the fake backend, with a real ledger file."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from rollout.clock import with_parts
from rollout.commands.context import Context, Options
from rollout.commands.deploys import deploy
from rollout.commands.maintenance import backup
from rollout.commands.rollbacks import rollback
from rollout.commands.statusreport import status
from rollout.errors import (
    DeployFailed,
    HostsUnreachable,
    LockBusy,
    Refused,
    RollbackIncomplete,
)
from rollout.events import Kind
from rollout.fleet import Outcome
from rollout.ledger import Ledger, RunStatus
from rollout.models import Playbook
from rollout.testing import FakeBackend, FakeConsole, clock_of, fake_context

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ctx(tmp_path: Path, playbook: Playbook, fleet: FakeBackend,
        monkeypatch: pytest.MonkeyPatch) -> Context:  # fmt: skip
    monkeypatch.setenv("ROLLOUT_BACKUPS", str(tmp_path / "backups"))
    return fake_context(tmp_path, playbook, fleet)


def flags_of(fleet: FakeBackend) -> dict[str, dict[str, object]]:
    return {n: dict(h.flags) for n, h in fleet.fakes.items()}


def test_deploy_phases_in_order_converges_and_records(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """Deploying 1, 2, 3 leaves every host at phase 3's full state and the ledger at 3."""
    for phase in (1, 2, 3):
        if phase == 3:
            backup(ctx)
        deploy(ctx, phase)
    for flags in flags_of(fleet).values():
        assert flags == playbook.phase(3).state.as_dict()
    assert ctx.ledger.state("inv").phase == 3


def test_rollback_turns_off_later_flags(ctx: Context, fleet: FakeBackend) -> None:
    """Rollback 3 -> 2 switches use_persistent_agents off on every host."""
    for phase in (1, 2, 3):
        if phase == 3:
            backup(ctx)
        deploy(ctx, phase)
    rollback(ctx, reason="test")
    assert all(f["use_persistent_agents"] is False for f in flags_of(fleet).values())
    assert ctx.ledger.state("inv").phase == 2


def test_redeploy_same_phase_changes_nothing(ctx: Context, fleet: FakeBackend) -> None:
    """Re-running a deploy that already converged applies nothing (idempotent)."""
    deploy(ctx, 1)
    before = {n: h.applies for n, h in fleet.fakes.items()}
    deploy(ctx, 1)
    assert {n: h.applies for n, h in fleet.fakes.items()} == before


def test_unreachable_host_at_preflight_changes_nothing(ctx: Context, fleet: FakeBackend) -> None:
    """A host that cannot be reached stops the deploy before any host is changed."""
    fleet.fakes["h2"].reachable = False
    with pytest.raises(HostsUnreachable, match="nothing was changed"):
        deploy(ctx, 1)
    assert all(h.applies == 0 for h in fleet.fakes.values())
    assert ctx.ledger.state("inv").phase is None


def test_node_down_fails_naming_the_host(ctx: Context, fleet: FakeBackend) -> None:
    """Deploying to a host whose node is down fails, naming that host."""
    fleet.fakes["h3"].node_up = False
    with pytest.raises(HostsUnreachable, match="h3"):
        deploy(ctx, 1)


def test_failed_apply_undoes_changed_hosts(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """A host whose flags do not read back stops the phase; changed hosts go back, verified."""
    deploy(ctx, 1)
    fleet.fakes["h2"].refuse_enable = frozenset({"use_reliable_messaging"})
    with pytest.raises(DeployFailed, match="h2"):
        deploy(ctx, 2)
    for name, flags in flags_of(fleet).items():
        assert flags == playbook.phase(1).state.as_dict(), name
    assert ctx.ledger.state("inv").phase == 1
    runs = ctx.ledger.runs("inv")
    assert runs[0].status is RunStatus.FAILED


def test_undo_that_cannot_verify_is_incomplete(ctx: Context, fleet: FakeBackend) -> None:
    """When the undo itself cannot verify, the result is an incomplete rollback, not success."""
    deploy(ctx, 1)
    fleet.fakes["h1"].down_after = 2  # phase 2 lands on h1, then its node dies
    fleet.fakes["h2"].refuse_enable = frozenset({"use_reliable_messaging"})
    with pytest.raises(RollbackIncomplete, match="did not verify on: h1"):
        deploy(ctx, 2)


def test_timed_out_apply_is_settled_by_read_back(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """An apply whose answer never came counts as done only if the read-back shows it."""
    fleet.fakes["h1"].apply_times_out = True
    deploy(ctx, 1)
    assert fleet.fakes["h1"].flags == playbook.phase(1).state.as_dict()


def test_high_risk_phase_refuses_without_terminal(ctx: Context, fleet: FakeBackend) -> None:
    """Phase 3 is high risk: without --yes and without a terminal it is refused, unchanged."""
    deploy(ctx, 1)
    deploy(ctx, 2)
    backup(ctx)
    ctx.options = Options(yes=False, wait=False, skip_checks=True, retry_deadline=3.0)
    with pytest.raises(Refused, match="high risk"):
        deploy(ctx, 3)
    assert all(h.flags["use_persistent_agents"] is False for h in fleet.fakes.values())


def test_second_run_fails_naming_the_holder(ctx: Context) -> None:
    """A run while another process holds the lock fails at once, naming the holder."""
    other = Ledger(ctx.ledger.path, who="alice", where=ctx.ledger.where, pid=1)
    run = other.start_run("inv", "deploy --phase 1", ["deploy"])
    other.acquire_lock("inv", "deploy --phase 1", run.id)
    with pytest.raises(LockBusy, match="alice"):
        deploy(ctx, 1)


def test_rollback_reports_unreachable_hosts(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """A rollback converges the reachable hosts and reports the unreachable one loudly."""
    deploy(ctx, 1)
    deploy(ctx, 2)
    fleet.fakes["h3"].reachable = False
    with pytest.raises(HostsUnreachable, match="INCOMPLETE.*h3"):
        rollback(ctx)
    assert fleet.fakes["h1"].flags == playbook.phase(1).state.as_dict()
    assert ctx.ledger.state("inv").phase == 2  # not recorded until every host verified


def test_status_shows_drift(ctx: Context, fleet: FakeBackend) -> None:
    """status reads each host and flags the one that differs from the recorded phase."""
    deploy(ctx, 1)
    fleet.fakes["h2"].restart()
    report = status(ctx)
    assert report.recorded == 1
    assert report.drifted == ("h2",)


def test_events_are_recorded_in_ledger(ctx: Context) -> None:
    """Every emitted event of a run lands in the ledger too."""
    deploy(ctx, 1)
    run = ctx.ledger.runs("inv")[0]
    kinds = [e.kind for e in ctx.ledger.events(run.id)]
    assert Kind.VERIFY.value in kinds and Kind.RUN_FINISH.value in kinds
    assert not ctx.ledger.open_intents("inv")


def test_failing_readiness_checks_block_deploy(ctx: Context, fleet: FakeBackend) -> None:
    """Deploy runs the readiness checklist first; a failing check refuses, nothing changes."""
    ctx.options = Options(yes=True, wait=False, source=str(REPO / "tests/data/checks/bad"))
    with pytest.raises(Refused, match="readiness checks failed"):
        deploy(ctx, 1)
    assert all(h.applies == 0 for h in fleet.fakes.values())


def test_skipped_checks_are_recorded(ctx: Context) -> None:
    """--skip-checks is allowed, and the ledger records that the checks were skipped."""
    deploy(ctx, 1)
    run = ctx.ledger.runs("inv")[0]
    assert any("SKIPPED" in str(e.data.get("message")) for e in ctx.ledger.events(run.id))


class _SlowToConnect(FakeBackend):
    """h1's handshake takes until h2 has been read (or 5 s, which fails the test below)."""

    def __init__(self, fleet: FakeBackend) -> None:
        super().__init__(fleet.fakes)
        self.h2_read = threading.Event()
        self.h1_waited_for_h2 = False

    def connect(self, names: Sequence[str]) -> dict[str, Outcome[None]]:
        if "h1" in names:
            self.h1_waited_for_h2 = self.h2_read.wait(timeout=5)
        return super().connect(names)

    def console(self, name: str) -> FakeConsole:
        console = super().console(name)
        if name == "h2":
            self.h2_read.set()
        return console


def test_preflight_reads_each_host_as_soon_as_it_is_connected(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    slow = _SlowToConnect(fleet)
    deploy(fake_context(tmp_path, playbook, slow), 1)
    assert slow.h1_waited_for_h2, "h2 was read only after every host had connected"
    assert all(h.flags == dict(playbook.phase(1).state) for h in slow.fakes.values())


@pytest.mark.parametrize(("give_up_after", "attempts"), [(0.0, 1), (None, 2)])
def test_give_up_after_bounds_the_rollback_retries(
    tmp_path: Path,
    playbook: Playbook,
    fleet: FakeBackend,
    give_up_after: float | None,
    attempts: int,
) -> None:
    """--give-up-after 0 makes one attempt; the default keeps retrying (here until h1 heals)."""
    clock = [0.0]
    ctx = fake_context(tmp_path, playbook, fleet, clock=clock_of(lambda: clock[0]))
    ctx.options = Options(yes=True, wait=False, skip_checks=True, retry_deadline=give_up_after)
    deploy(ctx, 1)
    deploy(ctx, 2)
    stuck = fleet.fakes["h1"]
    stuck.apply_ignored = True

    def heal(_seconds: float) -> None:  # the pause between attempts: h1 recovers meanwhile
        stuck.apply_ignored = False

    ctx.clock = with_parts(ctx.clock, sleep=heal)
    before = stuck.applies
    if attempts == 1:
        with pytest.raises(RollbackIncomplete, match="h1"):
            rollback(ctx, 1)
    else:
        rollback(ctx, 1)
    assert stuck.applies - before == attempts
