"""The CLI in-process (Invoke's ``Program``): exit codes, ``--json`` error lines, help, short
flags, and the ledger-only tasks that a broken playbook must not block. No host is contacted."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from invoke import Program

import tasks
from rollout.cli import RolloutTask, program
from rollout.inventory import load_inventory
from rollout.ledger import Ledger
from rollout.options import CONFIRM, OUTPUT, SHORT_FLAGS, TARGET, Flags

BROKEN_PLAYBOOK = "flags: [\n"


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    def error(self) -> dict[str, Any]:
        """The ``--json`` error line (the last line on stdout)."""
        line = json.loads(self.stdout.strip().splitlines()[-1])
        assert line["event"] == "error" and line["ok"] is False, line
        return dict(line)


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path) -> Iterator[None]:
    """No user SSH config or ledger; signal handlers a command installs are put back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    env = {k: os.environ.get(k) for k in ("ROLLOUT_LEDGER", "ROLLOUT_SSH_CONFIG",
                                          "ROLLOUT_BACKUPS")}  # fmt: skip
    os.environ["ROLLOUT_SSH_CONFIG"] = "none"
    os.environ["ROLLOUT_BACKUPS"] = str(tmp_path / "backups")
    os.environ.pop("ROLLOUT_LEDGER", None)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(*argv: str, prog: Program | None = None) -> Ran:
    """``invoke ARGV`` in this process. (``run(exit=False)`` would drop the exit code, so this
    keeps ``exit=True`` and reads the code from ``SystemExit``, as ``sys.exit`` would.)"""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    saved, sys.argv = sys.argv, ["invoke", *argv]  # the CLI reads its own command line too
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            (prog or Program(namespace=tasks.ns)).run(["invoke", *argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = saved
    return Ran(code, out.getvalue(), err.getvalue())


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Path, Path]:
    """A one-host inventory (never contacted) and a private ledger path."""
    inventory = tmp_path / "fleet.yml"
    inventory.write_text("all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.1\n")
    return inventory, tmp_path / "ledger.db"


def test_missing_inventory_exits_2_with_a_json_error_line(tmp_path: Path) -> None:
    """A missing inventory exits 2 and `--json` prints one error line naming it and the fix."""
    ran = run("status", "--json", "-i", str(tmp_path / "nope.yml"),
              "--ledger", str(tmp_path / "l.db"))  # fmt: skip
    assert ran.code == 2, ran.stderr
    error = ran.error()
    assert error["error"] == "InventoryError" and error["exit_code"] == 2
    assert "nope.yml" in error["message"] and error["hint"]
    assert "error: " in ran.stderr and "next: " in ran.stderr


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (("approve", "99"), "phase 99 does not exist"),
        (("deploy", "x"), "expects a phase number, got 'x'"),
        (("report", "--run", "r-nope"), "no run 'r-nope'"),
        (("report",), "no runs recorded"),
        (("unlock", "lk-000000000000"), "is not locked"),
    ],
)
def test_usage_errors_exit_2_with_a_json_error_line(
    fleet: tuple[Path, Path], argv: tuple[str, ...], fragment: str
) -> None:
    """A bad phase, an unknown run, an empty ledger or an unheld lock: exit 2, one UsageError
    line on stdout under --json, and the message on stderr."""
    inventory, ledger = fleet
    ran = run(*argv, "-j", "-i", str(inventory), "--ledger", str(ledger))
    assert ran.code == 2, ran.stderr
    error = ran.error()
    assert error["error"] == "UsageError" and error["exit_code"] == 2
    assert fragment in error["message"] and fragment in ran.stderr


def test_approve_out_of_range_says_what_to_approve_next(fleet: tuple[Path, Path]) -> None:
    """`invoke approve 99` names the next phase to approve, on stderr's next: line and in the
    JSON error's hint (a fresh ledger: phase 1)."""
    inventory, ledger = fleet
    ran = run("approve", "99", "-j", "-i", str(inventory), "--ledger", str(ledger))
    assert ran.code == 2, ran.stderr
    assert "`invoke approve 1`" in ran.error()["hint"]
    assert "next: the next phase is 1: `invoke approve 1`" in ran.stderr


@pytest.mark.parametrize(
    ("recorded", "hint"),
    [(None, "`invoke approve 1`"), (2, "`invoke approve 3`"), (5, "no phase is left")],
)
def test_bad_phase_hint_follows_the_recorded_phase(recorded: int | None, hint: str) -> None:
    """The out-of-range hint names the phase after the recorded one, or says none is left."""
    from rollout.commands.phases import bad_phase
    from rollout.errors import UsageError

    with pytest.raises(UsageError) as caught:
        bad_phase(99, 5, recorded)
    assert caught.value.hint is not None and hint in caught.value.hint


def test_broken_playbook_does_not_block_the_ledger_only_tasks(
    fleet: tuple[Path, Path], tmp_path: Path
) -> None:
    """With a playbook that does not parse, history, backups and unlock of a dead run's lock
    still work, while a task that needs the playbook (status) exits 2 naming it."""
    inventory, ledger_path = fleet
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_PLAYBOOK)
    key = load_inventory(inventory).name
    with Ledger(ledger_path, pid=2**22 + 12345) as ledger:  # a pid that is not alive
        run_record = ledger.start_run(key, "invoke deploy --phase 1", ())
        lock = ledger.acquire_lock(key, "invoke deploy --phase 1", run_record.id)
    common = ("-i", str(inventory), "--ledger", str(ledger_path), "-p", str(broken))

    history = run("history", "--json", *common)
    assert history.code == 0, history.stderr
    assert run_record.id in history.stdout
    assert run("backups", *common).code == 0
    unlocked = run("unlock", lock.id, "--json", *common)
    assert unlocked.code == 0, unlocked.stderr
    with Ledger(ledger_path) as ledger:
        assert ledger.holder(key) is None

    status = run("status", "--json", *common)
    assert status.code == 2
    assert status.error()["error"] == "PlaybookError" and str(broken) in status.error()["message"]


def test_short_flags_mean_the_same_in_every_task() -> None:
    """Every one-letter flag of every task is one of SHORT_FLAGS with its one meaning, and no
    task takes -h (it stays Invoke's help)."""
    seen: set[str] = set()
    for name in tasks.ns.task_names:
        for arg in tasks.ns[name].get_arguments():
            for short in (n for n in arg.names if len(n) == 1):
                assert short != "h", f"{name}: -h is --{arg.names[0]}"
                assert SHORT_FLAGS.get(short) == arg.name, f"{name}: -{short} is --{arg.name}"
                seen.add(short)
    assert seen == set(SHORT_FLAGS)


def test_every_option_has_help_in_every_task() -> None:
    """`invoke --help TASK` has a help text for every option, shared or the task's own, and
    asking twice gives the same (Invoke consumes a task's help dict)."""
    for name in tasks.ns.task_names:
        task = tasks.ns[name]
        first = {a.name: a.help for a in task.get_arguments()}
        assert all(first.values()), f"{name}: no help for {[k for k, v in first.items() if not v]}"
        assert {a.name: a.help for a in task.get_arguments()} == first


@pytest.mark.parametrize(("argv", "shown"), [
    (("deploy", "-h"), "deploy"), (("deploy", "--help"), "deploy"), (("report", "-h"), "report"),
    (("--help", "advance"), "advance"), (("unlock", "-h"), "unlock"),
])  # fmt: skip
def test_h_is_help(argv: tuple[str, ...], shown: str) -> None:
    """`-h` after a task (even one whose phase it would fill) prints that task's options."""
    ran = run(*argv)
    assert ran.code == 0, ran.stderr
    assert f"] {shown} [" in ran.stdout
    assert "-i STRING, --inventory=STRING" in ran.stdout and "-j, --json" in ran.stdout


def test_h_is_help_for_a_task_in_a_collection() -> None:
    """`invoke ledger.copy -h` (its positional would take the -h) prints its options."""
    ran = run("ledger.copy", "-h")
    assert ran.code == 0, ran.stderr
    assert "--src=STRING" in ran.stdout and "-j, --json" in ran.stdout


def test_the_rollout_command_has_the_same_tasks() -> None:
    """`rollout` (the pip entry point) lists the tasks `invoke` does."""
    ran = run("--list", prog=program())
    assert ran.code == 0, ran.stderr
    for name in ("deploy", "unlock", "ledger.copy", "lab.up"):
        assert name in ran.stdout


def test_flags_parse_into_options_once() -> None:
    """The one parse point: durations become seconds, and a task without --yes never asks
    while one with it asks unless given."""
    declared = frozenset((*TARGET.flags, *OUTPUT.flags, "lock_timeout", "give_up_after"))
    opts = Flags.of({"lock_timeout": "30s", "give_up_after": "2m", "json": True},
                    declared).options()  # fmt: skip
    assert (opts.lock_timeout, opts.retry_deadline, opts.yes) == (30.0, 120.0, True)
    assert Flags.of({}, declared | set(CONFIRM.flags)).options().yes is False


def test_a_task_cannot_redeclare_a_shared_option() -> None:
    """A task whose own signature repeats a group's option is refused when it is defined."""

    def body(c: Any, flags: Flags, json: bool = False) -> None:
        """A task that repeats --json."""

    with pytest.raises(ValueError, match="shared options already"):
        RolloutTask(body, options=(OUTPUT,))


@pytest.mark.parametrize(
    ("argv", "flag", "meant"),
    [
        (("rollback", "-e", "--to", "1", "--reason", "x"), "--echo", "--emergency"),
        (("deploy", "--phase", "1", "-d"), "--debug", "--dest"),
        (("status", "-V"), "--version", None),
        (("rollback", "-f", "x.yml"), "--config", "--force"),
        (("status", "history", "-w"), "--warn-only", "--wait"),
        (("deploy", "--phase", "2", "-R"), "--dry", "invoke plan"),
    ],
)
def test_invokes_own_flags_after_the_task_are_refused(
    fleet: tuple[Path, Path], argv: tuple[str, ...], flag: str, meant: str | None
) -> None:
    """`invoke rollback -e ...` (an old habit for --emergency) would run a plain rollback with
    Invoke's --echo: it exits 2 before any task runs, naming the flag and the likely meaning,
    and the ledger is not even created."""
    inventory, ledger = fleet
    ran = run(*argv, "-j", "-i", str(inventory), "--ledger", str(ledger))
    assert ran.code == 2, (ran.stdout, ran.stderr)
    error = ran.error()
    assert error["error"] == "UsageError" and "nothing was run" in error["message"]
    assert f"`{flag}`" in error["message"]
    if meant:
        assert meant in error["message"]
    assert not ledger.exists()


def test_invokes_own_flags_before_the_task_and_values_are_not_refused(
    fleet: tuple[Path, Path]
) -> None:
    """Invoke's options before the task name are Invoke's business, and a value that looks
    like a flag (`--reason -e`) is a value: neither is refused."""
    inventory, ledger = fleet
    ran = run("-e", "history", "-j", "-i", str(inventory), "--ledger", str(ledger))
    assert "nothing was run" not in ran.stdout + ran.stderr
    from rollout.cli import misplaced_core_flags

    assert misplaced_core_flags(("invoke", "rollback", "--reason", "-e")) == ()
    assert misplaced_core_flags(("invoke", "-d", "rollback")) == ()
    assert misplaced_core_flags(("invoke", "rollback", "-e")) == ("echo",)
    # `invoke` (no bundled tasks) also has --collection and --search-root
    assert misplaced_core_flags(("invoke", "rollback", "-c", "5", "-r", "x")) == (
        "collection",
        "search-root",
    )
