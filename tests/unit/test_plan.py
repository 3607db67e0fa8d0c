"""Pure planning: batches, fail budget, targets and per-host diffs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.errors import Refused, UsageError
from rollout.models import FlagState
from rollout.plan import (
    Action,
    batch_failed,
    batch_sizes,
    build_plan,
    make_batches,
    resolve_target,
)
from rollout.playbook import load_playbook

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def playbook():
    return load_playbook(REPO / "playbooks" / "otp_refactor.yml")


@pytest.mark.parametrize(
    ("total", "serial", "expected"),
    [
        (10, [1, "50%", "100%"], [1, 5, 4]),
        (10, ["30%"], [3, 3, 3, 1]),
        (3, [1], [1, 1, 1]),
        (1, ["10%"], [1]),
        (5, ["100%"], [5]),
        (7, [2, 3], [2, 3, 2]),
        (0, [1], []),
    ],
)
def test_batch_sizes_follow_ansible_serial(total, serial, expected):
    """serial entries are counts or percentages of all hosts, floored, min 1; the last repeats."""
    assert batch_sizes(total, serial) == expected


def test_make_batches_keeps_inventory_order():
    """Batches slice hosts in inventory order."""
    assert make_batches(["a", "b", "c", "d"], [1, "50%"]) == (("a",), ("b", "c"), ("d",))


@pytest.mark.parametrize(
    ("failed", "size", "pct", "stop"),
    [(0, 5, 0, False), (1, 5, 0, True), (1, 5, 20, False), (2, 5, 20, True), (1, 1, 99, True)],
)
def test_batch_failed_is_strictly_greater_than_budget(failed, size, pct, stop):
    """A batch stops the run when more than max_fail_percentage of it failed (Ansible's rule)."""
    assert batch_failed(failed, size, pct) is stop


def test_deploy_refuses_skipping_ahead_without_force(playbook):
    """Deploying phase 3 from phase 1 needs --force."""
    with pytest.raises(Refused, match="skips ahead"):
        resolve_target(Action.DEPLOY, playbook, 1, 3)
    assert resolve_target(Action.DEPLOY, playbook, 1, 3, force=True).number == 3


def test_deploy_refuses_going_back(playbook):
    """Deploying an earlier phase than the recorded one is a rollback, and says so."""
    with pytest.raises(Refused, match="rollback --to 1"):
        resolve_target(Action.DEPLOY, playbook, 3, 1)


def test_deploy_rejects_unknown_phase(playbook):
    """A phase number outside the playbook is a usage error."""
    with pytest.raises(UsageError, match="does not exist"):
        resolve_target(Action.DEPLOY, playbook, None, 9)


def test_rollback_defaults_to_previous_phase(playbook):
    """rollback without --to goes one phase back from the recorded phase."""
    assert resolve_target(Action.ROLLBACK, playbook, 3, None).number == 2
    with pytest.raises(UsageError):
        resolve_target(Action.ROLLBACK, playbook, None, None)


def test_emergency_targets_configured_phase(playbook):
    """Emergency rollback converges to the playbook's emergency phase, a full state."""
    target = resolve_target(Action.EMERGENCY, playbook, 4, None)
    assert target.number == playbook.emergency.phase
    assert target.state == playbook.phase(playbook.emergency.phase).state


def test_plan_turns_off_flags_from_later_phases(playbook):
    """Rolling back 3 -> 2 plans use_persistent_agents off: full states, not deltas."""
    at3 = playbook.phase(3).state.as_dict()
    plan = build_plan(Action.ROLLBACK, playbook, playbook.phase(2), {"h1": at3}, ["h1"], 3)
    changes = {c.flag: c.target for c in plan.host("h1").changes}
    assert changes == {"use_persistent_agents": False}
    assert plan.host("h1").matches == 3


# the no-op and drift cases are data now: tests/data/plans/already_at_target_is_noop.yml and
# drifted_host_matches_no_phase.yml (run by test_plan_specs.py)


def test_true_and_one_percent_are_different_values():
    """A percentage of 1 is not the boolean true (and 0 is not false)."""
    state = FlagState.of({"f": True})
    assert state.changes_from({"f": 1})
    assert not state.changes_from({"f": True})
