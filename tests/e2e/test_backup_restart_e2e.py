"""Backup, restore and rolling restart against real sshd + BEAM lab hosts, through the engine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from rollout.backup import load_backup, restore_backup, take_backup
from rollout.commands.context import Context, Options, load_context
from rollout.commands.deploys import deploy
from rollout.commands.running import running
from rollout.events import Collector, Kind
from rollout.playbook import load_playbook
from rollout.restart import RestartStatus, RestartStopped, rolling_restart
from rollout_lab import Lab, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from .cli import PLAYBOOK, fast_playbook

pytestmark = pytest.mark.e2e
LAB_HOSTS = 2
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(6)}


def context(tmp_path: Path, inventory: Path, events: Collector) -> Context:
    options = Options(
        inventory=str(inventory),
        playbook=str(fast_playbook(tmp_path / "playbook.yml")),
        ledger=str(tmp_path / "ledger.db"),
        yes=True,
        wait=False,
        skip_checks=True,  # the lab has no service source tree to check
    )
    return load_context(options, events)


def with_host_vars(lab: Lab, dest: Path, **per_host: Mapping[str, object]) -> Path:
    """A copy of the lab's inventory with extra variables for some hosts."""
    data = yaml.safe_load(lab.inventory.read_text())
    hosts = data["all"]["children"]["foundation"]["hosts"]
    for name, extra in per_host.items():
        hosts[name].update(extra)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def host_state(lab: Lab, name: str) -> Path:
    return lab.host(name).root / "state"


def flags(lab: Lab) -> dict[str, dict[str, bool | int]]:
    """Every node's flags, read directly (not through the tool under test)."""
    return {h.name: control.read_flags(h) for h in lab.hosts}


def test_restore_brings_back_exactly_the_backed_up_flags(clean_lab: Lab, tmp_path: Path) -> None:
    """Backup at phase 2, deploy 3 and tamper, restore: every node holds phase 2's flags again."""
    events = Collector()
    ctx = context(tmp_path, clean_lab.inventory, events)
    deploy(ctx, 1)
    deploy(ctx, 2)
    root = tmp_path / "backups"
    with running(ctx, "invoke backup") as (_run, _lock, ex):
        taken = take_backup(ex, ctx.inventory.name, ctx.playbook, ctx.hosts, root, 2)
    assert taken.complete and all(e.flags == STATES[2] for e in taken.hosts)
    deploy(ctx, 3)
    control.rpc(clean_lab.hosts[1], ":ok = Foundation.FeatureFlags.enable(:use_v2_coordinator)")
    assert all(f != STATES[2] for f in flags(clean_lab).values())
    loaded = load_backup(root, ctx.inventory.name, taken.id)
    with running(ctx, "invoke restore") as (_run, _lock, ex):
        report = restore_backup(ex, loaded, ctx.hosts, restore_state=False)
    assert flags(clean_lab) == {h.name: STATES[2] for h in clean_lab.hosts}
    assert report.phase == 2 and all(r.exact for r in report.results)


def test_state_paths_round_trip_byte_for_byte(clean_lab: Lab, tmp_path: Path) -> None:
    """Files under a host's state_paths are archived, and a restore puts back the exact bytes."""
    payload = os.urandom(150_000)  # incompressible: the restore uploads it in several pieces
    extra: dict[str, Mapping[str, object]] = {}
    for host in clean_lab.hosts:
        state = host.root / "state"
        (state / "sub").mkdir(parents=True, exist_ok=True)
        (state / "data.bin").write_bytes(payload + host.name.encode())
        (state / "sub" / "notes.txt").write_text(f"{host.name}\n")
        owner = host.root.stat()
        for path in (state, state / "sub", state / "data.bin", state / "sub" / "notes.txt"):
            os.chown(path, owner.st_uid, owner.st_gid)  # the SSH user writes them on restore
        extra[host.name] = {"state_paths": [str(state)]}
    inventory = with_host_vars(clean_lab, tmp_path / "inv.yml", **extra)
    ctx = context(tmp_path, inventory, Collector())
    root = tmp_path / "backups"
    with running(ctx, "invoke backup") as (_run, _lock, ex):
        taken = take_backup(ex, ctx.inventory.name, ctx.playbook, ctx.hosts, root, None)
    for host in clean_lab.hosts:
        assert taken.host(host.name).archive is not None
        (host.root / "state" / "data.bin").write_bytes(b"overwritten")
        (host.root / "state" / "sub" / "notes.txt").unlink()
        newer = host.root / "state" / "newer"
        newer.write_text("written after the backup")
        os.chown(newer, host.root.stat().st_uid, host.root.stat().st_gid)
    with running(ctx, "invoke restore") as (_run, _lock, ex):
        report = restore_backup(ex, taken, ctx.hosts, restore_state=True)
    for host in clean_lab.hosts:
        state = host.root / "state"
        assert (state / "data.bin").read_bytes() == payload + host.name.encode()
        assert (state / "sub" / "notes.txt").read_text() == f"{host.name}\n"
        assert (state / "newer").exists()  # files the backup does not hold are left alone
    for result in report.results:
        assert result.state is not None and result.state.ok and result.state.files == 2
        newer = host_state(clean_lab, result.host) / "newer"
        assert result.state.extra == (str(newer).lstrip("/"),)


def test_rolling_restart_reapplies_the_phase_one_host_at_a_time(
    clean_lab: Lab, tmp_path: Path
) -> None:
    """Each node is really restarted (new pid) and verified at phase 2 before the next starts."""
    events = Collector()
    ctx = context(tmp_path, clean_lab.inventory, events)
    deploy(ctx, 1)
    deploy(ctx, 2)
    pids = {h.name: control.node_pid(h) for h in clean_lab.hosts}
    del events.events[:]
    with running(ctx, "invoke restart") as (_run, _lock, ex):
        report = rolling_restart(ex, ctx.playbook.phase(2), ctx.hosts, batch=1, wait_timeout=60)
    assert report.verified == tuple(h.name for h in clean_lab.hosts)
    for host in clean_lab.hosts:
        assert control.node_pid(host) not in (None, pids[host.name]), host.name
    assert flags(clean_lab) == {h.name: STATES[2] for h in clean_lab.hosts}
    steps = [
        (e.kind, e.host)
        for e in events.events
        if (e.kind is Kind.RESTART and e.message.startswith("restarting")) or e.kind is Kind.VERIFY
    ]
    h1, h2 = (h.name for h in clean_lab.hosts)
    assert steps == [(Kind.RESTART, h1), (Kind.VERIFY, h1), (Kind.RESTART, h2), (Kind.VERIFY, h2)]
    verified_h1 = next(e.ts for e in events.events if e.kind is Kind.VERIFY and e.host == h1)
    started_h2 = next(e.ts for e in events.events if e.kind is Kind.RESTART and e.host == h2)
    assert verified_h1 <= started_h2


def test_failed_restart_stops_before_the_next_batch(clean_lab: Lab, tmp_path: Path) -> None:
    """A restart command that fails on the first host leaves the second host's node alone."""
    first, second = clean_lab.hosts
    inventory = with_host_vars(
        clean_lab, tmp_path / "inv.yml", **{first.name: {"restart_command": "echo no >&2; exit 3"}}
    )
    ctx = context(tmp_path, inventory, Collector())
    deploy(ctx, 1)
    pid = control.node_pid(second)
    with pytest.raises(RestartStopped) as caught, running(ctx, "invoke restart") as (_r, _l, ex):
        rolling_restart(ex, ctx.playbook.phase(1), ctx.hosts)
    report = caught.value.report
    assert [h.status for h in report.hosts] == [
        RestartStatus.RESTART_FAILED,
        RestartStatus.UNTOUCHED,
    ]
    assert "exited 3: no" in (report.hosts[0].error or "")
    assert control.node_pid(second) == pid
    assert control.read_flags(second) == STATES[1]
