"""Deploy, status and rollback against real sshd + BEAM lab hosts, through the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from .cli import CLI, PLAYBOOK, Ran

pytestmark = pytest.mark.e2e
LAB_HOSTS = 3
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(6)}


@pytest.fixture
def cli(clean_lab: Lab, tmp_path: Path) -> Iterator[CLI]:
    yield CLI(clean_lab.inventory, tmp_path / "ledger.db")


def flags(lab: Lab) -> dict[str, dict[str, bool | int]]:
    """Read every node's flags directly (not through the tool under test)."""
    return {h.name: control.read_flags(h) for h in lab.hosts}


def ok(ran: Ran) -> Ran:
    assert ran.code == 0, ran.stdout + ran.stderr
    return ran


def test_deploy_three_phases_then_status(cli: CLI, clean_lab: Lab) -> None:
    """deploy 1 -> 2 -> 3 converges every node to phase 3's full state; status says so."""
    for phase in ("1", "2", "3"):
        if phase == "3":
            ok(cli("backup"))  # phase 3's gate: a backup taken after phase 2
        ran = ok(cli("deploy", "--phase", phase, "--yes", "--no-wait"))
        assert ran.stdout.count("verified at Phase " + phase) == LAB_HOSTS
    assert all(f == STATES[3] for f in flags(clean_lab).values())
    status = ok(cli("status"))
    assert "recorded phase 3" in status.stdout
    assert status.stdout.count("phase 3 ") >= LAB_HOSTS


def test_rollback_turns_off_flags_from_later_phase(cli: CLI, clean_lab: Lab) -> None:
    """rollback from 3 leaves use_persistent_agents false everywhere: full state, not delta."""
    for phase in ("1", "2", "3"):
        if phase == "3":
            ok(cli("backup"))
        ok(cli("deploy", "--phase", phase, "--yes", "--no-wait"))
    ok(cli("rollback", "--reason", "e2e"))
    for name, f in flags(clean_lab).items():
        assert f["use_persistent_agents"] is False, name
        assert f == STATES[2], name


def test_node_down_fails_naming_the_host_and_changes_nothing(cli: CLI, clean_lab: Lab) -> None:
    """With one node down, deploy fails at pre-flight naming it; no other host changes."""
    control.stop_node(clean_lab.hosts[1])
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait")
    assert ran.code == 5
    assert clean_lab.hosts[1].name in ran.stderr
    for host in (clean_lab.hosts[0], clean_lab.hosts[2]):
        assert control.read_flags(host) == STATES[0]


def test_unknown_flag_in_playbook_fails_before_connecting(
    cli: CLI, clean_lab: Lab, tmp_path: Path
) -> None:
    """A playbook naming an unknown flag is refused with file and line; no host is touched."""
    bad = tmp_path / "bad.yml"
    text = PLAYBOOK.read_text().replace("use_v2_coordinator: 10", "use_v3_coordinator: 10")
    bad.write_text(text)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "use_v3_coordinator" in t)
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=bad)
    assert ran.code == 2
    assert f"{bad}:{line}" in ran.stderr and "use_v3_coordinator" in ran.stderr
    assert "connected" not in ran.stdout
    assert all(f == STATES[0] for f in flags(clean_lab).values())


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("use_sync_test_apis: true", 'use_sync_test_apis: "#{System.halt()}"'),
        ("use_sync_test_apis: true", '"a;b": true'),
        ("use_sync_test_apis: true", "use_sync_test_apis: '\"; System.halt(); \"'"),
    ],
)
def test_hostile_values_are_refused_and_nodes_stay_up(
    cli: CLI, clean_lab: Lab, tmp_path: Path, old: str, new: str
) -> None:
    """Interpolation or a name like a;b in the playbook is refused; every node stays up."""
    bad = tmp_path / "hostile.yml"
    bad.write_text(PLAYBOOK.read_text().replace(old, new, 1))
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=bad)
    assert ran.code == 2, ran.stdout + ran.stderr
    for host in clean_lab.hosts:
        assert control.rpc(host, "IO.puts(:alive)").strip() == "alive"
        assert control.read_flags(host) == STATES[0]


def test_json_output_parses_line_by_line(cli: CLI) -> None:
    """--json prints one JSON object per line, ending with the run's finish event."""
    ran = ok(cli("deploy", "--phase", "1", "--yes", "--no-wait", "--json"))
    events = ran.events()
    assert events[0]["event"] == "run.start"
    assert events[-1]["event"] == "run.finish" and events[-1]["ok"] is True
    assert sum(1 for e in events if e["event"] == "host.verify" and e["ok"]) == LAB_HOSTS
    status = ok(cli("status", "--json"))
    assert status.events()[0]["recorded_phase"] == 1


def test_plan_changes_nothing(cli: CLI, clean_lab: Lab) -> None:
    """plan shows the per-host diff that deploy would apply, and changes nothing."""
    ran = ok(cli("plan", "--phase", "1"))
    assert "use_sync_test_apis: off -> on" in ran.stdout
    assert all(f == STATES[0] for f in flags(clean_lab).values())


def test_skipping_phases_needs_force(cli: CLI, clean_lab: Lab) -> None:
    """deploy --phase 3 from nothing is refused without --force, and works with it."""
    ran = cli("deploy", "--phase", "3", "--yes", "--no-wait")
    assert ran.code == 8 and "--force" in ran.stderr
    ok(cli("backup"))
    ok(cli("deploy", "--phase", "3", "--yes", "--no-wait", "--force"))
    assert all(f == STATES[3] for f in flags(clean_lab).values())


def test_high_risk_phase_without_terminal_is_refused(cli: CLI, clean_lab: Lab) -> None:
    """Phase 3 is high risk: without --yes and without a terminal, nothing changes."""
    ok(cli("deploy", "--phase", "1", "--yes", "--no-wait"))
    ok(cli("deploy", "--phase", "2", "--yes", "--no-wait"))
    ok(cli("backup"))
    ran = cli("deploy", "--phase", "3", "--no-wait")
    assert ran.code == 8 and "--yes" in ran.stderr
    assert all(f == STATES[2] for f in flags(clean_lab).values())


def test_phase_three_needs_a_fresh_backup(cli: CLI, clean_lab: Lab) -> None:
    """Phase 3's gate refuses it until a backup is taken after phase 2 was applied."""
    ok(cli("backup"))  # before phase 2: too old to count
    ok(cli("deploy", "--phase", "1", "--yes", "--no-wait"))
    ok(cli("deploy", "--phase", "2", "--yes", "--no-wait"))
    ran = cli("deploy", "--phase", "3", "--yes", "--no-wait")
    assert ran.code == 8 and "invoke backup" in ran.stderr
    assert all(f == STATES[2] for f in flags(clean_lab).values())
    ok(cli("backup"))
    ok(cli("deploy", "--phase", "3", "--yes", "--no-wait"))
    assert all(f == STATES[3] for f in flags(clean_lab).values())


def test_unknown_host_key_is_refused(cli: CLI, clean_lab: Lab, tmp_path: Path) -> None:
    """A host whose key is not in known_hosts is refused with its fingerprint."""
    text = clean_lab.inventory.read_text()
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = tmp_path / "inv.yml"
    inv.write_text(text.replace(str(clean_lab.known_hosts), str(empty)))
    ran = CLI(inv, cli.ledger)("status")
    assert ran.code == 5 and "SHA256:" in ran.stdout and "unknown host key" in ran.stdout


def test_cli_lists_and_documents_every_task() -> None:
    """invoke --list describes every task, and each task has --help text."""
    import subprocess

    from .cli import INVOKE, REPO

    listing = subprocess.run(
        [INVOKE, "--list"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    names = [
        line.split()[0]
        for line in listing.splitlines()
        if line.startswith("  ") and not line.startswith("   ")
    ]
    assert {"deploy", "rollback", "status", "plan", "monitor", "lab.up"} <= set(names)
    for name in names:
        helped = subprocess.run(
            [INVOKE, "--help", name], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        doc = helped.split("Docstring:")[1].split("Options:")[0].strip()
        assert doc and "none" not in doc.lower(), name
