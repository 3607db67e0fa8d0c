"""Issue 11's holes, pinned on the fake backend with a real ledger: each test reads the fake
hosts' flags (what the node would answer) and the ledger's record after the command."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.clock import PartsClock, with_parts
from rollout.commands.context import Context
from rollout.commands.deploys import deploy
from rollout.commands.rollbacks import emergency, rollback
from rollout.errors import Refused, UsageError
from rollout.models import Playbook
from rollout.testing import FakeBackend, fake_context


@pytest.fixture
def ctx(tmp_path: Path, playbook: Playbook, fleet: FakeBackend,
        monkeypatch: pytest.MonkeyPatch) -> Context:  # fmt: skip
    monkeypatch.setenv("ROLLOUT_BACKUPS", str(tmp_path / "backups"))
    return fake_context(tmp_path, playbook, fleet)


def phases(fleet: FakeBackend, playbook: Playbook) -> dict[str, int | None]:
    return {n: playbook.match(dict(h.flags)) for n, h in fleet.fakes.items()}


# -- rollback never moves a host forward -----------------------------------------------------


def test_emergency_ahead_of_the_recorded_phase_is_refused(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """`rollback --emergency --to 4` on a fleet at phase 1 is refused and changes nothing."""
    deploy(ctx, 1)
    with pytest.raises(Refused, match="an emergency only goes back"):
        emergency(ctx, 4, reason="probe")
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 1}
    state = ctx.ledger.state("inv")
    assert state.phase == 1 and not state.paused


@pytest.mark.parametrize("to", [99, -1])
def test_emergency_to_a_phase_the_playbook_lacks_is_a_usage_error(
    ctx: Context, fleet: FakeBackend, playbook: Playbook, to: int
) -> None:
    """`rollback --emergency --to 99` is a usage error (exit 2), not a KeyError traceback."""
    deploy(ctx, 1)
    with pytest.raises(UsageError, match="does not exist") as caught:
        emergency(ctx, to, reason="probe")
    assert int(caught.value.exit_code) == 2
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 1}
    assert ctx.ledger.state("inv").phase == 1


def test_rollback_refuses_to_move_a_host_forward(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """`rollback --to 3 --force` on a fleet recorded (and read back) at phase 1 is refused before
    any change, naming the hosts and their phase: no host was ever at 3, so it would move them
    forward; the hosts and the record stay at 1."""
    deploy(ctx, 1)
    applies = {n: h.applies for n, h in fleet.fakes.items()}
    with pytest.raises(Refused, match=r"forward: h1 \(at phase 1\), h2") as caught:
        rollback(ctx, 3, reason="probe", force=True)
    assert "--to 1" in (caught.value.hint or "")
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 1}
    assert {n: h.applies for n, h in fleet.fakes.items()} == applies
    assert ctx.ledger.state("inv").phase == 1


def test_rollback_restores_a_host_that_lost_its_flags(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """A host verified at phase 2 that restarted (reads back at its defaults, phase 0) is not
    "behind": a rollback 2 -> 1 puts it at 1 with the others, and records 1."""
    deploy(ctx, 1)
    deploy(ctx, 2)
    fleet.fakes["h3"].restart()
    rollback(ctx, 1, reason="probe")
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 1}
    assert ctx.ledger.state("inv").phase == 1


def test_emergency_leaves_hosts_already_behind_and_records_the_lowest(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """An emergency to phase 1 with h3 never deployed (deploys ran with --limit h1,h2; the
    ledger records 1 from an earlier full deploy of h1, h2 only) leaves h3 at 0, brings the
    others to 1, and records phase 0, so that no drift repair moves h3 forward later."""
    from rollout.models import Inventory

    two = tuple(h for h in ctx.hosts if h.name != "h3")
    full = ctx.inventory
    ctx.inventory = Inventory(full.path, full.name, two, {"all": frozenset(["h1", "h2"])})
    ctx.hosts = two
    deploy(ctx, 1)
    deploy(ctx, 2)
    ctx.inventory, ctx.hosts = full, full.hosts  # h3 joins the inventory, never deployed
    emergency(ctx, 1, reason="probe")
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 0}
    state = ctx.ledger.state("inv")
    assert state.phase == 0 and state.paused


# -- an inventory's identity -----------------------------------------------------------------

INVENTORY = """all:
  vars:
    known_hosts_file: known_hosts
{extra}  hosts:
    h1:
      ansible_host: 127.0.0.1
"""


def project(root: Path, *files: str, extra: str = "") -> Path:
    """A checkout-like tree at ``root`` (a tasks.py marks its root) with inventories ``files``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tasks.py").write_text("")
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(INVENTORY.format(extra=extra))
    return root


def load(path: Path, ledger: Path, fleet: FakeBackend) -> Context:
    from rollout.commands.context import Options, load_context
    from rollout.events import Collector

    options = Options(inventory=str(path), ledger=str(ledger), yes=True, wait=False,
                      skip_checks=True, retry_deadline=3.0)  # fmt: skip
    ctx = load_context(options, Collector(), backend_factory=lambda _h, _p: fleet)
    ctx.clock = with_parts(ctx.clock, sleep=lambda _s: None)
    return ctx


def one_host(playbook: Playbook) -> FakeBackend:
    from rollout.testing import FakeHost

    return FakeBackend({"h1": FakeHost("h1", playbook.flags)})


def test_same_stem_in_two_directories_are_two_fleets(tmp_path: Path, playbook: Playbook) -> None:
    """eu/prod.yml deployed to phase 2, then `rollback` of us/prod.yml (never deployed) sharing
    the ledger: refused as having nothing recorded; the us host stays at 0, eu's record at 2."""
    root = project(tmp_path / "repo", "inventory/eu/prod.yml", "inventory/us/prod.yml")
    ledger = tmp_path / "ledger.db"
    eu_hosts, us_hosts = one_host(playbook), one_host(playbook)
    eu = load(root / "inventory/eu/prod.yml", ledger, eu_hosts)
    deploy(eu, 1)
    deploy(eu, 2)
    us = load(root / "inventory/us/prod.yml", ledger, us_hosts)
    assert (eu.inventory.name, us.inventory.name) == ("inventory/eu/prod.yml",
                                                      "inventory/us/prod.yml")  # fmt: skip
    with pytest.raises(UsageError, match="no earlier phase"):
        rollback(us, reason="probe")
    assert playbook.match(dict(us_hosts.fakes["h1"].flags)) == 0
    assert us_hosts.fakes["h1"].applies == 0
    assert playbook.match(dict(eu_hosts.fakes["h1"].flags)) == 2
    assert us.ledger.state("inventory/us/prod.yml").phase is None
    assert us.ledger.state("inventory/eu/prod.yml").phase == 2


def test_the_same_fleet_from_two_checkouts_is_one_record(tmp_path: Path) -> None:
    """Two checkouts (or machines) of one project give an inventory the same ledger key, and an
    explicit rollout_fleet wins over the path."""
    from rollout.inventory import load_inventory

    a = project(tmp_path / "a" / "rollout", "inventory/prod.yml")
    b = project(tmp_path / "elsewhere" / "ci", "inventory/prod.yml")
    assert load_inventory(a / "inventory/prod.yml").name == "inventory/prod.yml"
    assert load_inventory(b / "inventory/prod.yml").name == "inventory/prod.yml"
    named = project(tmp_path / "c", "inventory/x.yml", extra="    rollout_fleet: eu-prod\n")
    assert load_inventory(named / "inventory/x.yml").name == "eu-prod"


def test_records_under_the_old_stem_key_are_never_mixed_in_silently(
    tmp_path: Path, playbook: Playbook
) -> None:
    """A ledger holding phase 2 under the old key `prod` refuses (exit 2, naming rollout_fleet)
    until the inventory says whose record it is; `rollout_fleet: prod` then continues it."""
    from rollout.errors import InventoryError
    from rollout.ledger import Ledger

    ledger_path = tmp_path / "ledger.db"
    old = Ledger(ledger_path)
    run = old.start_run("prod", "invoke deploy --phase 2", ())
    old.set_phase("prod", 2, run.id, soak_required=0.0)
    old.close()
    root = project(tmp_path / "repo", "inventory/eu/prod.yml")
    with pytest.raises(InventoryError, match="records under 'prod'") as caught:
        load(root / "inventory/eu/prod.yml", ledger_path, one_host(playbook))
    assert int(caught.value.exit_code) == 2
    assert "rollout_fleet: prod" in (caught.value.hint or "")
    adopted = project(tmp_path / "repo2", "inventory/eu/prod.yml",
                      extra="    rollout_fleet: prod\n")  # fmt: skip
    ctx = load(adopted / "inventory/eu/prod.yml", ledger_path, one_host(playbook))
    assert ctx.inventory.name == "prod" and ctx.ledger.state("prod").phase == 2


def test_rollout_fleet_on_a_host_is_refused(tmp_path: Path) -> None:
    """rollout_fleet set on one host (not under all: vars) is an error naming file, line, key."""
    from rollout.errors import InventoryError
    from rollout.inventory import load_inventory

    root = project(tmp_path / "repo")
    path = root / "inv.yml"
    path.write_text(INVENTORY.format(extra="") + "      rollout_fleet: x\n")
    with pytest.raises(InventoryError, match="names the whole inventory") as caught:
        load_inventory(path)
    assert caught.value.location is not None and caught.value.location.line == 7


# -- soaks count only sampled health, on the monotonic clock ---------------------------------


class Clocks:
    """A wall clock that an NTP step can move, and a monotonic one that only waits move."""

    def __init__(self, step: float = 0.0) -> None:
        self.wall_now = 1_800_000_000.0
        self.mono_now = 500.0
        self.step = step  # added to the wall clock on every wait, as a stepped clock would

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def wait(self, seconds: float) -> bool:
        self.mono_now += seconds
        self.wall_now += seconds + self.step
        return False


def clocked(tmp_path: Path, playbook: Playbook, fleet: FakeBackend, clocks: Clocks,
            watch: bool = False, **options: object) -> Context:  # fmt: skip
    """A context on ``clocks``; ``watch``: deploy waits out the soak."""
    import dataclasses

    clock = PartsClock(clocks.wall, clocks.mono, lambda _s: None)
    ctx = fake_context(tmp_path, playbook, fleet, clock=clock, **options)
    ctx.options = dataclasses.replace(ctx.options, wait=watch)
    ctx.cancel.wait = clocks.wait  # type: ignore[method-assign]
    return ctx


def test_a_stepped_wall_clock_does_not_shorten_a_soak(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """A 60 s soak polled every 10 s while the wall clock gains 8 s per poll completes after 60 s
    of monotonic watching (not ~30 s), and the ledger counts exactly 60 s."""
    clocks = Clocks(step=8.0)
    ctx = clocked(tmp_path, playbook, fleet, clocks, soak=60.0, interval=10.0, watch=True)
    start = clocks.mono_now
    deploy(ctx, 1)
    assert clocks.mono_now - start >= 60.0
    state = ctx.ledger.state("inv")
    assert state.phase == 1 and state.soak_counted == 60.0 and state.soak_complete
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 1}


def test_a_zero_soak_on_a_breaching_fleet_is_never_healthy(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """`--soak 0` with a breaching host samples instead of reporting "0s healthy": the breach
    rolls the fleet back to phase 0, recorded and paused."""
    from rollout.errors import RolledBack

    ctx = clocked(tmp_path, playbook, fleet, Clocks(), soak=0.0, interval=1.0, watch=True)
    fleet.fakes["h2"].metrics["error_rate"] = 7.5
    with pytest.raises(RolledBack):
        deploy(ctx, 1)
    assert phases(fleet, playbook) == {"h1": 0, "h2": 0, "h3": 0}
    state = ctx.ledger.state("inv")
    assert state.phase == 0 and state.paused


def test_advance_never_moves_on_without_a_healthy_round(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """After `deploy --no-wait --soak 0`, `advance` on a breaching fleet takes a round instead of
    deploying phase 2: the hosts stay at 1 and the ledger records 1."""
    from rollout.pipeline import Outcome, advance

    ctx = clocked(tmp_path, playbook, fleet, Clocks(), soak=0.0)
    deploy(ctx, 1)
    fleet.fakes["h2"].metrics["error_rate"] = 7.5
    result = advance(ctx)
    assert result.outcome is Outcome.SAMPLED
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 1}
    assert ctx.ledger.state("inv").phase == 1


def test_advance_moves_on_in_the_call_that_completes_the_soak(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """The advance whose healthy round completes phase 1's soak deploys phase 2 in that same
    call: every host reads back at 2 and the ledger records 2."""
    from rollout.pipeline import Outcome, advance

    clocks = Clocks()
    ctx = clocked(tmp_path, playbook, fleet, clocks, soak=10.0)
    deploy(ctx, 1)
    assert advance(ctx).outcome is Outcome.SAMPLED  # the first round: nothing counted yet
    clocks.wait(10.0)
    result = advance(ctx)
    assert result.outcome is Outcome.ADVANCED and result.phase == 2
    assert phases(fleet, playbook) == {"h1": 2, "h2": 2, "h3": 2}
    assert ctx.ledger.state("inv").phase == 2


# -- a flag the service does not know -------------------------------------------------------


def test_preflight_refuses_a_flag_no_node_knows_before_any_change(
    tmp_path: Path, playbook: Playbook
) -> None:
    """A declared flag that every node answers `absent` stops the deploy at pre-flight (exit 2),
    naming the flag, the hosts and the playbook line; no host is changed, nothing recorded."""
    from rollout.errors import PlaybookError
    from rollout.testing import FakeHost

    known = tuple(f for f in playbook.flags if f != "use_persistent_agents")
    fleet = FakeBackend({n: FakeHost(n, known) for n in ("h1", "h2", "h3")})
    ctx = fake_context(tmp_path, playbook, fleet)
    with pytest.raises(PlaybookError) as caught:
        deploy(ctx, 1)
    error = caught.value
    assert int(error.exit_code) == 2
    assert "`use_persistent_agents`" in error.message and "h1, h2, h3" in error.message
    line = playbook.flag_lines["use_persistent_agents"]
    assert line > 0 and error.location is not None and error.location.line == line
    assert f"otp_refactor.yml:{line}" in error.message
    assert all(h.applies == 0 for h in fleet.fakes.values())
    assert ctx.ledger.state("inv").phase is None


def test_an_unknown_flag_is_not_retried(tmp_path: Path, playbook: Playbook) -> None:
    """A rollback that a node refuses with unknown_flag fails that host at once (one apply, no
    retry loop), converges the others, and leaves the record where it was."""
    from rollout.errors import RollbackIncomplete
    from rollout.testing import FakeHost

    fleet = FakeBackend({n: FakeHost(n, playbook.flags) for n in ("h1", "h2", "h3")})
    ctx = fake_context(tmp_path, playbook, fleet, retry_deadline=30.0)
    deploy(ctx, 1)
    fleet.fakes["h1"].unknown = frozenset({"use_persistent_agents"})
    before = fleet.fakes["h1"].applies
    with pytest.raises(RollbackIncomplete, match="h1"):
        rollback(ctx, 0, reason="probe")
    assert fleet.fakes["h1"].applies == before + 1
    assert phases(fleet, playbook) == {"h1": 0, "h2": 0, "h3": 0}  # h1's other flags went back
    assert ctx.ledger.state("inv").phase == 1


# -- side outputs never abort a rollback; broken templates found at load ----------------------


def test_a_notification_that_raises_never_aborts_a_rollback(
    ctx: Context, fleet: FakeBackend, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notifier raising TypeError mid-rollback does not abort it: every host reads back at
    phase 0 and the ledger records 0."""
    from rollout import notify

    def broken(self: object, _n: object) -> None:
        raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")

    deploy(ctx, 1)
    monkeypatch.setattr(notify.Notifier, "send", broken)
    rollback(ctx, 0, reason="probe")
    assert phases(fleet, playbook) == {"h1": 0, "h2": 0, "h3": 0}
    assert ctx.ledger.state("inv").phase == 0


@pytest.fixture
def broken_template() -> object:
    """A notification template under templates/notify/ whose expression raises TypeError."""
    from rollout.notify import TEMPLATES

    path = TEMPLATES / "notify" / f"_broken_{__import__('os').getpid()}.json.j2"
    path.write_text('{"text": {{ (n.hosts_failed + 1) | tojson }}}\n')
    yield path
    path.unlink()


def test_a_broken_notification_template_is_found_when_the_playbook_loads(
    tmp_path: Path, broken_template: Path
) -> None:
    """A playbook naming a template that raises TypeError is refused at load (exit 2), naming
    the playbook file, the line of notify.webhook.template, and the template's line."""
    import yaml

    from rollout.errors import PlaybookError
    from rollout.playbook import load_playbook

    data = yaml.safe_load((Path(__file__).parents[2] / "playbooks/otp_refactor.yml").read_text())
    data["notify"]["webhook"]["template"] = f"notify/{broken_template.name}"
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1)
                if t.strip().startswith("template:"))  # fmt: skip
    with pytest.raises(PlaybookError) as caught:
        load_playbook(path)
    error = caught.value
    assert int(error.exit_code) == 2
    assert error.location is not None and error.location.line == line
    assert error.location.key == "notify.webhook.template"
    assert f"{broken_template}:1" in error.message and "TypeError" in error.message


# -- inputs only from regular files, with size caps -----------------------------------------


def test_a_fifo_or_dev_zero_playbook_is_refused_at_once(tmp_path: Path) -> None:
    """A FIFO playbook or /dev/zero is an exit-2 error naming the path (no hang, no read)."""
    import os

    from rollout.errors import PlaybookError
    from rollout.playbook import load_playbook

    fifo = tmp_path / "p.yml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(PlaybookError, match="not a regular file") as caught:
            load_playbook(path)
        assert str(path) in caught.value.message and int(caught.value.exit_code) == 2


def test_irregular_or_oversized_inventory_inputs_are_refused(tmp_path: Path) -> None:
    """A FIFO or /dev/zero inventory, a FIFO vars file, an inventory over 10 MB and a vars file
    over 1 MB are each an InventoryError naming the file."""
    import os

    from rollout.errors import InventoryError
    from rollout.inventory import load_inventory

    fifo = tmp_path / "fifo.yml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(InventoryError, match="not a regular file"):
            load_inventory(path)
    root = project(tmp_path / "repo", "inv.yml")
    (root / "group_vars").mkdir()
    os.mkfifo(root / "group_vars" / "all.yml")
    with pytest.raises(InventoryError, match=r"group_vars/all.yml: is a FIFO"):
        load_inventory(root / "inv.yml")
    (root / "group_vars" / "all.yml").unlink()
    (root / "group_vars" / "all.yml").write_text("# " + "x" * 1_000_000 + "\n")
    with pytest.raises(InventoryError, match="larger than 1000000 bytes"):
        load_inventory(root / "inv.yml")
    big = tmp_path / "big.yml"
    big.write_text(INVENTORY.format(extra="") + "#" * 10_000_001 + "\n")
    with pytest.raises(InventoryError, match="larger than 10000000 bytes"):
        load_inventory(big)


# -- cancels leave the record true ---------------------------------------------------------


def second_signal_at(ctx: Context, kind: str, phase: int) -> None:
    """Make the run's emitter raise KeyboardInterrupt (what a second signal raises) on the first
    `kind` event about ``phase``, as the handler would while that host call is under way."""
    from rollout.events import Collector, Event

    inner = ctx.emit
    fired: list[bool] = []

    def emit(event: Event) -> None:
        assert isinstance(inner, Collector)
        inner(event)
        if not fired and event.kind.value == kind and event.data.get("phase") == phase:
            fired.append(True)
            raise KeyboardInterrupt

    ctx.emit = emit


def test_an_automatic_rollback_cut_by_a_second_signal_is_recorded_and_paused(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """SIGINT then SIGTERM during an automatic rollback: the hosts are back at 0, the ledger
    records 0 and paused (so no advance re-applies the breached phase), the run INTERRUPTED,
    and the hint's command then finishes cleanly."""
    from rollout.errors import Interrupted
    from rollout.ledger import RunStatus
    from rollout.pipeline import Outcome, advance

    ctx = clocked(tmp_path, playbook, fleet, Clocks(), soak=60.0, interval=1.0, watch=True)
    fleet.fakes["h2"].metrics["error_rate"] = 7.5
    second_signal_at(ctx, "host.verify", 0)
    with pytest.raises(Interrupted) as caught:
        deploy(ctx, 1)
    assert int(caught.value.exit_code) == 130
    assert phases(fleet, playbook) == {"h1": 0, "h2": 0, "h3": 0}
    state = ctx.ledger.state("inv")
    assert state.phase == 0 and state.paused
    assert ctx.ledger.runs("inv", 1)[0].status is RunStatus.INTERRUPTED
    assert advance(ctx).outcome is Outcome.PAUSED
    assert phases(fleet, playbook) == {"h1": 0, "h2": 0, "h3": 0}
    hint = caught.value.hint or ""
    assert "`invoke rollback --to 0 --reason" in hint
    ctx.emit = __import__("rollout.events", fromlist=["Collector"]).Collector()
    rollback(ctx, 0, reason="finish the automatic rollback")
    assert ctx.ledger.state("inv").phase == 0


def test_an_interrupted_emergency_is_recorded_and_paused(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """A second signal during `rollback --emergency` (3 -> 1) still leaves phase 1 recorded and
    the rollout paused; every host read back at 1; the hint names a command that works."""
    from rollout.errors import Interrupted

    for phase in (1, 2):
        deploy(ctx, phase)
    second_signal_at(ctx, "host.verify", 1)
    with pytest.raises(Interrupted) as caught:
        emergency(ctx, 1, reason="probe")
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 1}
    state = ctx.ledger.state("inv")
    assert state.phase == 1 and state.paused
    assert "`invoke rollback --emergency --to 1" in (caught.value.hint or "")


def test_every_cancel_signal_is_routed_to_the_token() -> None:
    """SIGINT, SIGTERM, SIGHUP and SIGQUIT each set the token (no hard kill); a second one
    raises KeyboardInterrupt."""
    import os
    import signal

    from rollout.cancel import Cancel

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                                               signal.SIGQUIT)}  # fmt: skip
    try:
        for signum in saved:
            cancel = Cancel()
            cancel.install()
            os.kill(os.getpid(), signum)
            assert cancel.is_set() and cancel.signal_name == signal.Signals(signum).name
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signum)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_a_second_signal_while_a_run_closes_its_record_does_not_cut_it() -> None:
    """While a run gives its leases back and writes its outcome (``Cancel.closing``), a second
    signal is noted, not raised: the record is never left half-written. Outside it, the
    second signal still stops at once."""
    import os
    import signal

    from rollout.cancel import Cancel

    saved = signal.getsignal(signal.SIGINT)
    try:
        cancel = Cancel()
        cancel.install()
        os.kill(os.getpid(), signal.SIGINT)
        written = []
        with cancel.closing():
            os.kill(os.getpid(), signal.SIGINT)
            written.append("outcome")
        assert written == ["outcome"] and cancel.late
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, saved)


# -- host output bounded in bytes, secrets redacted ------------------------------------------


def test_capture_keeps_a_bounded_head_and_tail() -> None:
    """200 MB through a 1 MiB capture keeps at most 1 MiB (its first and last halves) and says
    how much it dropped; the tail of the output (where the answer is) survives."""
    from rollout.output import MAX_OUTPUT_BYTES, Capture

    capture = Capture(MAX_OUTPUT_BYTES)
    chunk = b"x" * 65536
    for _ in range(200_000_000 // len(chunk)):
        capture.add(chunk)
    capture.add(b"\nMARK {}\n")
    assert capture.size <= MAX_OUTPUT_BYTES
    text = capture.text()
    assert text.endswith("MARK {}\n") and "bytes of output dropped" in text


def test_events_and_error_tails_are_bounded_in_bytes() -> None:
    """A 20 MB single-line message or data value becomes at most FIELD_BYTES in an event (so in
    its JSON line and ledger row), and a command's tail at most TAIL_BYTES."""
    import json

    from rollout.events import Event, Kind
    from rollout.output import FIELD_BYTES, TAIL_BYTES
    from rollout.transport.base import CommandResult

    huge = "é" * 10_000_000
    event = Event(Kind.WARNING, huge, data={"error": huge, "nested": {"x": [huge]}}, ts=0.0)
    line = json.dumps(event.to_json(), ensure_ascii=False).encode()
    assert len(line) < 3 * (FIELD_BYTES + 40) + 200  # three strings, each clipped
    result = CommandResult("h1", "cmd", 1, "", huge, 0.0)
    assert len(result.tail().encode()) <= TAIL_BYTES + 40


def test_every_known_secret_is_redacted(tmp_path: Path, playbook: Playbook) -> None:
    """release_env values of every host and the webhook URL are collected and replaced."""
    from rollout.commands.context import known_secrets
    from rollout.inventory import load_inventory
    from rollout.output import Redactor

    root = project(tmp_path / "repo")
    path = root / "inv.yml"
    path.write_text(INVENTORY.format(extra="") + '      release_env: {RELEASE_COOKIE: "c00kie-'
                    'value-1"}\n')  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROLLOUT_WEBHOOK_URL", "https://hooks.example/T0/secret-token")
        redact = Redactor(known_secrets(load_inventory(path), playbook))
    text = "RELEASE_COOKIE=c00kie-value-1 url=https://hooks.example/T0/secret-token"
    assert redact(text) == "RELEASE_COOKIE=<redacted> url=<redacted>"


# -- every hint a command that works ---------------------------------------------------------


def test_status_of_a_phase_the_playbook_lacks_is_a_clear_message(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """A ledger recording phase 7 under a five-phase playbook: `status` says so with a rollback
    hint (no KeyError), and `monitor` and `advance` are usage errors; no host changes."""
    from rollout.commands.monitoring import monitor
    from rollout.commands.statusreport import status
    from rollout.pipeline import advance
    from rollout.report import render_status

    deploy(ctx, 1)
    run = ctx.ledger.start_run("inv", "invoke deploy --phase 7", ())
    ctx.ledger.set_phase("inv", 7, run.id, soak_required=60.0)
    text = render_status(status(ctx), playbook)
    assert "records phase 7, which this playbook does not have" in text
    assert "`invoke rollback --to 5 --reason ...`" in text
    for command in (monitor, advance):
        with pytest.raises(UsageError, match="records phase 7"):
            command(ctx)
    assert phases(fleet, playbook) == {"h1": 1, "h2": 1, "h3": 1}


def test_no_hint_names_a_phase_that_is_not_there(
    ctx: Context, fleet: FakeBackend, playbook: Playbook
) -> None:
    """With nothing recorded, an interrupted run and a host at phase 1, status names phase 0 and
    offers `invoke rollback --to 0`, never `--to None`; following that hint converges h1."""
    from rollout.commands.statusreport import status
    from rollout.ledger import RunStatus
    from rollout.report import render_status

    run = ctx.ledger.start_run("inv", "invoke deploy --phase 1", ())
    ctx.ledger.finish_run(run.id, RunStatus.INTERRUPTED, "interrupted")
    fleet.fakes["h1"].flags = dict(playbook.phase(1).state.as_dict())
    text = render_status(status(ctx), playbook)
    assert "None" not in text
    assert "1 host(s) differ from phase 0" in text and "`invoke rollback --to 0" in text
    rollback(ctx, 0, reason="follow the hint")
    assert phases(fleet, playbook) == {"h1": 0, "h2": 0, "h3": 0}
    assert ctx.ledger.state("inv").phase == 0
