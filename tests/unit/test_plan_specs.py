"""Plan specs as data: inventory + playbook + readings in, expected batches and changes out.

Each case is one file in ``tests/data/plans/`` (the format is described in full in
``tests/data/plans/README.md``)::

    inventory: |            # inline inventory YAML, or {file: inventories/NAME.yml} (case dir)
      all: {hosts: {h1: {}, h2: {}}}
    playbook: {file: playbooks/otp_refactor.yml}   # repo-relative, or inline YAML text
    recorded: 1             # the phase the ledger records before the command (omit: none)
    readings:               # per host, as read at pre-flight; a host left out reads phase 0
      h1: 1                 #   a phase number: that phase's full state
      h2: {phase: 1, flags: {use_v2_coordinator: 50, enforce_supervised_tasks: absent}}
    unreachable: [h3]       # hosts that cannot be connected to
    verified: {h2: 3}       # the highest phase the ledger shows each host verified at
    command: deploy --phase 2 [--force] [--limit PATTERN]
             # or: rollback [--to N] [--force] | rollback --emergency [--to N]
    expect:
      target: 2
      batches: [[h1], [h2]]
      hosts: {h1: apply 1->2, h2: skip 2->2, h3: unreachable}
      changes: {h1: ["use_v2_coordinator: 50% -> off"]}   # optional, per host
      fail_budget: [0, 1]   # optional: failures each batch tolerates under max_fail_percentage
      recorded: 2           # optional: the phase the ledger records afterwards
      error: {class: Refused, message: a fragment of the message}

A ``deploy`` case asks for the plan ``invoke plan`` prints and ``deploy`` executes
(``commands.deploys.make_plan``: resolve the target, pre-flight, ``build_plan``); nothing
changes. A ``rollback`` case runs the rollback on fake hosts: its one batch is the hosts it
converged, and each host's ``to`` is the phase it reads back at afterwards. A host is
``apply`` (changed or converged), ``skip`` (already at the target), ``leave`` (an emergency
leaves a host that is behind the target) or ``unreachable``.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout import errors
from rollout.commands.context import Context, Options
from rollout.commands.deploys import make_plan
from rollout.commands.rollbacks import emergency, rollback
from rollout.events import Collector, Event, Kind
from rollout.inventory import load_inventory, select_hosts
from rollout.ledger import RunStatus, open_ledger
from rollout.models import Observed, Opaque, Playbook
from rollout.plan import Plan, batch_failed
from rollout.playbook import load_playbook, load_playbook_text
from rollout.testing import FakeBackend, FakeHost

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = REPO / "tests" / "data" / "plans"
CASES = sorted(CASES_DIR.glob("*.yml"))
CASE_KEYS = {"inventory", "playbook", "recorded", "readings", "unreachable", "verified", "command",
             "expect"}  # fmt: skip
EXPECT_KEYS = {"target", "batches", "hosts", "changes", "fail_budget", "recorded", "error",
               "warnings"}  # fmt: skip


@dataclass(frozen=True)
class Command:
    name: str  # deploy, rollback or emergency
    phase: int | None
    force: bool
    limit: str | None


def parse_command(text: str) -> Command:
    """The case's command line, in the CLI's own spelling (``invoke`` left off)."""
    words = shlex.split(text)
    parser = argparse.ArgumentParser(prog=words[0], exit_on_error=False)
    parser.add_argument("--phase", type=int)
    parser.add_argument("--to", type=int)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--emergency", action="store_true")
    parser.add_argument("--limit", "-l")
    args = parser.parse_args(words[1:])
    if words[0] == "deploy":
        return Command("deploy", args.phase, args.force, args.limit)
    assert words[0] == "rollback", f"unknown command {text!r}"
    name = "emergency" if args.emergency else "rollback"
    return Command(name, args.to, args.force, args.limit)


def _text_or_file(spec: str | Mapping[str, str], base: Path, dest: Path) -> Path:
    """An inline YAML text is written to ``dest``; ``{file: PATH}`` is resolved against
    ``base``."""
    if isinstance(spec, Mapping):
        return base / spec["file"]
    dest.write_text(spec, encoding="utf-8")
    return dest


def _playbook(spec: str | Mapping[str, str]) -> Playbook:
    if isinstance(spec, Mapping):
        return load_playbook(REPO / spec["file"])
    return load_playbook_text(spec, "<case playbook>")


def _flags(playbook: Playbook, reading: int | Mapping[str, Any] | None) -> dict[str, Observed]:
    """A host's flags as read: a phase's full state, with per-flag overrides (``absent``: the
    node answers no value; any other string: a term that is neither boolean nor integer)."""
    if reading is None or isinstance(reading, int):
        return dict(playbook.phase(reading or 0).state.as_dict())
    flags: dict[str, Observed] = dict(playbook.phase(reading.get("phase", 0)).state.as_dict())
    for flag, value in (reading.get("flags") or {}).items():
        if value == "absent":
            flags.pop(flag, None)
        elif isinstance(value, str):
            flags[flag] = Opaque(value)
        else:
            flags[flag] = value
    return flags


def _where(playbook: Playbook, flags: Mapping[str, Observed]) -> str:
    match = playbook.match(flags)
    return "drifted" if match is None else str(match)


@dataclass
class Got:
    target: int | None = None
    batches: list[list[str]] | None = None
    hosts: dict[str, str] | None = None
    changes: dict[str, list[str]] | None = None
    fail_budget: list[int] | None = None
    recorded: int | None = None
    error: dict[str, str] | None = None
    warnings: list[str] | None = None


def run_case(case: Mapping[str, Any], tmp_path: Path) -> Got:
    """Load the case's inventory and playbook, seed the fake hosts and the ledger, and run its
    command; what came out, in the shape of ``expect``."""
    playbook = _playbook(case["playbook"])
    inventory = load_inventory(
        _text_or_file(case["inventory"], CASES_DIR, tmp_path / "inventory.yml")
    )
    command = parse_command(case["command"])
    readings = case.get("readings") or {}
    unreachable = set(case.get("unreachable") or ())
    before = {h.name: _flags(playbook, readings.get(h.name)) for h in inventory.hosts}
    fakes = {}
    for host in inventory.hosts:
        fake = FakeHost(host.name, playbook.flags, reachable=host.name not in unreachable)
        fake.flags = dict(before[host.name])  # type: ignore[arg-type]  # Opaque terms too
        fakes[host.name] = fake
    backend = FakeBackend(fakes)
    ledger = open_ledger(tmp_path / "ledger.db")
    seed = ledger.start_run(inventory.name, "seed", ())
    if case.get("recorded") is not None:
        ledger.set_phase(inventory.name, case["recorded"], seed.id, soak_required=0)
    for host, phase in (case.get("verified") or {}).items():
        event = Event(
            Kind.VERIFY, f"verified at phase {phase}", host=host, ok=True, data={"phase": phase},
            ts=ledger.clock.wall(),
        )
        ledger.event(seed.id, Kind.VERIFY.value, event.to_json(), host=host)
    ledger.finish_run(seed.id, RunStatus.SUCCEEDED)
    try:
        hosts = select_hosts(inventory, command.limit)
    except errors.RolloutError as exc:
        return Got(error={"class": type(exc).__name__, "message": exc.message})
    options = Options(yes=True, wait=False, skip_checks=True, retry_deadline=0.0,
                      limit=command.limit)  # fmt: skip
    ctx = Context(options, playbook, inventory, hosts, ledger, Collector(),
                  lambda _h, _p: backend)  # fmt: skip
    got = Got()
    try:
        if command.name == "deploy":
            assert command.phase is not None, "deploy needs --phase N"
            plan = make_plan(ctx, command.phase, force=command.force)
            return _from_plan(playbook, plan, before, _warnings(ctx))
        if command.name == "rollback":
            rollback(ctx, command.phase, reason="spec", force=command.force)
        else:
            emergency(ctx, command.phase, reason="spec")
    except errors.RolloutError as exc:
        got.error = {"class": type(exc).__name__, "message": exc.message}
        if command.name == "deploy":
            return got
    converged = [h.name for h in hosts if fakes[h.name].applies]
    got.batches = [converged] if converged else []
    got.hosts = {}
    for host in hosts:
        name = host.name
        fake = fakes[name]
        if name in unreachable:
            got.hosts[name] = "unreachable"
        elif fake.applies:
            got.hosts[name] = f"apply {_where(playbook, before[name])}->"
            got.hosts[name] += _where(playbook, fake.flags)
        else:
            got.hosts[name] = f"leave {_where(playbook, before[name])}"
    got.recorded = ledger.state(inventory.name).phase
    return got


def _warnings(ctx: Context) -> list[str]:
    """The warnings a deploy's plan emitted (what `invoke plan` shows above the table)."""
    assert isinstance(ctx.emit, Collector)
    return [e.message for e in ctx.emit.events if e.kind is Kind.WARNING]


def _from_plan(
    playbook: Playbook,
    plan: Plan,
    before: Mapping[str, Mapping[str, Observed]],
    warnings: list[str],
) -> Got:
    hosts = {}
    for host in plan.hosts:
        action = "skip" if host.noop else "apply"
        hosts[host.host] = f"{action} {_where(playbook, before[host.host])}->{plan.target.number}"
    budget = []
    for batch in plan.batches:
        tolerated = 0
        while tolerated < len(batch) and not batch_failed(
            tolerated + 1, len(batch), plan.max_fail_percentage
        ):
            tolerated += 1
        budget.append(tolerated)
    return Got(
        target=plan.target.number,
        batches=[list(b) for b in plan.batches],
        hosts=hosts,
        changes={h.host: [str(c) for c in h.changes] for h in plan.hosts},
        fail_budget=budget,
        warnings=warnings,
    )


def _explain(expected: Mapping[str, Any], got: Got) -> str:
    """Expected vs got, one line per host and per field, marking the ones that differ."""
    lines = []
    for key in ("error", "target", "batches", "fail_budget", "recorded"):
        if key in expected:
            have = getattr(got, key)
            mark = "  " if have == expected[key] else "!!"
            lines.append(f"{mark} {key}: expected {expected[key]!r}, got {have!r}")
    want_hosts = expected.get("hosts") or {}
    have_hosts = got.hosts or {}
    for name in sorted({*want_hosts, *have_hosts}):
        want, have = want_hosts.get(name), have_hosts.get(name)
        mark = "  " if want == have else "!!"
        lines.append(f"{mark} host {name}: expected {want!r}, got {have!r}")
    for name, want in (expected.get("changes") or {}).items():
        have = (got.changes or {}).get(name)
        mark = "  " if want == have else "!!"
        lines.append(f"{mark} changes {name}: expected {want!r}, got {have!r}")
    return "\n".join(lines)


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan_spec(path: Path, tmp_path: Path) -> None:
    """Each plan spec's command gives exactly its expected batches, host actions, target and
    changes, or its expected error."""
    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(case) <= CASE_KEYS, f"{path.name}: unknown keys {set(case) - CASE_KEYS}"
    expected = case["expect"]
    assert set(expected) <= EXPECT_KEYS, f"{path.name}: unknown expect keys"
    got = run_case(case, tmp_path)
    why = f"{path.name}:\n{_explain(expected, got)}"
    if "error" in expected:
        assert got.error is not None, why
        assert got.error["class"] == expected["error"]["class"], why
        assert expected["error"]["message"] in got.error["message"], why
    else:
        assert got.error is None, why
    for key in ("target", "batches", "fail_budget", "recorded"):
        if key in expected:
            assert getattr(got, key) == expected[key], why
    if "hosts" in expected:
        assert got.hosts == expected["hosts"], why
    for name, changes in (expected.get("changes") or {}).items():
        assert (got.changes or {}).get(name) == changes, why
    if "warnings" in expected:  # one fragment a warning, in order; [] is "none at all"
        have = got.warnings or []
        assert len(have) == len(expected["warnings"]), f"{why}\nwarnings: {have}"
        for fragment, message in zip(expected["warnings"], have, strict=True):
            assert fragment in message, f"{why}\nwarning: {message!r} lacks {fragment!r}"
    assert "hosts" in expected or "error" in expected, f"{path.name} expects nothing"


def test_every_case_directory_file_is_a_case_or_referenced() -> None:
    """A file under tests/data/plans/ is a case, the README, or an inventory a case names."""
    named = {
        c["inventory"]["file"]
        for c in (yaml.safe_load(p.read_text(encoding="utf-8")) for p in CASES)
        if isinstance(c["inventory"], Mapping)
    }
    for path in CASES_DIR.rglob("*"):
        if path.is_file() and path.suffix == ".yml" and path.parent != CASES_DIR:
            assert str(path.relative_to(CASES_DIR)) in named, f"{path} is used by no case"
    assert len(CASES) >= 12
