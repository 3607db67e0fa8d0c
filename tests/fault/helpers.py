"""Helpers for fault scenarios: a fast playbook, runs watched through their JSON events,
and read-back of every host straight from its node (never through the tool under test)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollout.cancel import SIGNALS
from rollout.ledger import Ledger
from rollout.playbook import load_playbook
from rollout_lab import Lab, LabHost, control
from rollout_lab.testing import reset

from ..e2e.cli import CLI, PLAYBOOK, Ran
from . import faults

Event = dict[str, Any]
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(6)}

#: Deadlines of the fault playbook: a dead peer is given up on within these.
CONNECT_TIMEOUT = 3.0
COMMAND_TIMEOUT = 5.0
#: The client's grace past a command's deadline (rollout.transport.base.CLIENT_GRACE).
CLIENT_GRACE = 10.0
#: How long a failing rollback or undo keeps retrying a host (rollout Options.retry_deadline).
RETRY_DEADLINE = 60.0


def fault_playbook(
    dest: Path, *, edit: Callable[[dict[str, Any]], None] | None = None, **policy: Any
) -> Path:
    """The reference playbook with short deadlines: connect 3s, commands 5s, serial [1, 100%],
    no notifications, no waves; ``edit`` may change the data before it is written."""
    data = yaml.safe_load(PLAYBOOK.read_text())
    data["health"]["source"] = {"kind": "console", "timeout": "3s"}
    data["policy"] = {
        "serial": [1, "100%"],
        "max_fail_percentage": 0,
        "connect_timeout": f"{CONNECT_TIMEOUT:g}s",
        "command_timeout": f"{COMMAND_TIMEOUT:g}s",
        **policy,
    }
    data.pop("notify", None)
    for phase in data["phases"]:
        phase.pop("waves", None)  # the fault scenarios reach every host in one go; waves have
        # their own tests (tests/e2e/test_waves_e2e.py)
    if edit is not None:
        edit(data)
    dest.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 16))
    return dest


# -- read-back ---------------------------------------------------------------------------------


def flags(lab: Lab, hosts: Iterable[LabHost] | None = None) -> dict[str, dict[str, bool | int]]:
    """Every node's flags, read locally through its own rpc (not through rollout)."""
    return {h.name: control.read_flags(h) for h in (hosts if hosts is not None else lab.hosts)}


def phase_of(found: Mapping[str, bool | int]) -> int | None:
    """The phase whose FULL state equals ``found`` exactly, or None (a mixed state)."""
    matches = [p for p, state in STATES.items() if state == dict(found)]
    return max(matches) if matches else None


def phases(lab: Lab, hosts: Iterable[LabHost] | None = None) -> dict[str, int | None]:
    """Each host's phase by read-back; None where its flags match no phase."""
    return {name: phase_of(f) for name, f in flags(lab, hosts).items()}


def assert_consistent(lab: Lab, allowed: Iterable[int], hosts: Iterable[LabHost] | None = None):
    """Every host holds some allowed phase's full state (never a mix); returns host -> phase."""
    found = phases(lab, hosts)
    assert all(p in set(allowed) for p in found.values()), found
    return found


def nodes_answer(lab: Lab) -> bool:
    """Every node answers a trivial rpc with :ok."""
    return all(control.rpc(h, "IO.inspect(:ok)").strip() == ":ok" for h in lab.hosts)


def undo_faults(lab: Lab) -> None:
    """Thaw every sshd (sessions too) and node a test may have frozen; cheap, no rpc."""
    for host in lab.hosts:
        if control.sshd_pid(host) is not None:
            faults.thaw_sshd(host)
        if control.node_pid(host) is not None:
            control.signal_node(host, signal.SIGCONT)


def restore(lab: Lab) -> None:
    """Undo any fault left behind, start what is down, and reset every node's flags."""
    undo_faults(lab)
    reset(lab)


# -- runs watched through their --json events ---------------------------------------------------


@dataclass
class Finished:
    """A watched run after it ended."""

    code: int
    events: list[Event]
    stdout: str
    stderr: str
    seconds: float

    def of(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == kind]

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


@dataclass
class _Trigger:
    match: Callable[[Event], bool]
    action: Callable[[Event], None]
    fired: threading.Event = field(default_factory=threading.Event)


class Watched:
    """A CLI run with ``--json``: its events as they come, triggers fired on them at once."""

    def __init__(self, cli: CLI, *args: str, playbook: Path | None = None) -> None:
        self.started = time.monotonic()
        self.proc = cli.popen(*args, "--json", playbook=playbook)
        self.events: list[Event] = []
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._triggers: list[_Trigger] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def when(self, match: Callable[[Event], bool], action: Callable[[Event], None]) -> _Trigger:
        """Call ``action`` (once) on the first event ``match`` accepts, before reading on."""
        trigger = _Trigger(match, action)
        with self._cond:
            self._triggers.append(trigger)
            for event in self.events:
                self._fire(trigger, event)
        return trigger

    def _fire(self, trigger: _Trigger, event: Event) -> None:
        if not trigger.fired.is_set() and trigger.match(event):
            trigger.fired.set()
            trigger.action(event)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "<not json>", "line": line}
            with self._cond:
                self.events.append(event)
                for trigger in self._triggers:
                    self._fire(trigger, event)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, match: Callable[[Event], bool], timeout: float = 60) -> Event:
        """The first event ``match`` accepts; fails if the run ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if match(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"no such event within {timeout}s:\n{''.join(self.lines)}")
                self._cond.wait(min(remaining, 0.5))

    def kill(self) -> None:
        """SIGKILL the controller, as the OOM killer or a lost machine would."""
        os.kill(self.proc.pid, signal.SIGKILL)

    def finish(self, timeout: float = 180) -> Finished:
        """Wait for the run to end (fails the test past ``timeout``: the run hung)."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"run hung for {timeout}s:\n{''.join(self.lines)}") from None
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        return Finished(
            self.proc.returncode,
            list(self.events),
            "".join(self.lines),
            err,
            time.monotonic() - self.started,
        )


def kind(name: str, host: str | None = None, **data: Any) -> Callable[[Event], bool]:
    """A matcher for events of kind ``name`` (and ``host``, and data values) ."""

    def match(event: Event) -> bool:
        if event.get("event") != name or (host is not None and event.get("host") != host):
            return False
        got = event.get("data") or {}
        return all(got.get(k) == v for k, v in data.items())

    return match


def ok(ran: Ran | Finished) -> Ran | Finished:
    assert ran.code == 0, ran.stdout + ran.stderr
    return ran


def deploy(cli: CLI, phase: int, playbook: Path, *extra: str) -> Ran:
    """``deploy --phase N --yes --no-wait``, expected to succeed."""
    ran = cli("deploy", "--phase", str(phase), "--yes", "--no-wait", *extra, playbook=playbook)
    assert ran.code == 0, ran.stdout + ran.stderr
    return ran


def ledger_events(cli: CLI, kind_name: str | None = None) -> list[Any]:
    """Every journaled event of the CLI's inventory (optionally of one kind), oldest first."""
    ledger = Ledger(cli.ledger)
    try:
        inventory = ledger.runs()[0].inventory
        return ledger.inventory_events(inventory, kind_name)
    finally:
        ledger.close()


# -- the CLI in-process (for many quick cases) ---------------------------------------------------


class InProcessCLI:
    """Runs the real tasks in this process with invoke's ``Program`` (no interpreter start-up
    per case), against one inventory and a private ledger; same interface as ``CLI``."""

    def __init__(self, inventory: Path, ledger: Path, env: Mapping[str, str] | None = None):
        self.inventory = inventory
        self.ledger = ledger
        self.env = {"ROLLOUT_LEDGER": str(ledger), **(env or {})}

    def __call__(self, *args: str, playbook: Path | None = None) -> Ran:
        import contextlib
        import io
        import sys

        from invoke import Program

        import tasks

        argv = [*args, "--inventory", str(self.inventory)]
        if args and args[0] in ("deploy", "advance") and "--source" not in args:
            argv.append("--skip-checks")
        if playbook is not None:
            argv += ["--playbook", str(playbook)]
        out, err = io.StringIO(), io.StringIO()
        handlers = {s: signal.getsignal(s) for s in SIGNALS}
        saved_env = {k: os.environ.get(k) for k in self.env}
        saved_argv = sys.argv
        code = 0
        try:
            os.environ.update(self.env)
            sys.argv = ["invoke", *argv]
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                Program(namespace=tasks.ns).run(["invoke", *argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = saved_argv
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return Ran(code, out.getvalue(), err.getvalue())


def lease_files(lab: Lab) -> dict[str, str | None]:
    """Each host's lease file (its first line), read straight from the host's state dir."""
    out: dict[str, str | None] = {}
    for host in lab.hosts:
        path = host.release_bin.parent.parent / ".rollout-state" / "lease"
        out[host.name] = path.read_text().split()[0] if path.exists() else None
    return out
