"""The ``--json`` error line, and the per-host results that host-spanning errors carry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout.commands.deploys import deploy
from rollout.commands.rollbacks import rollback
from rollout.errors import HostOutcome, HostsUnreachable, RollbackIncomplete, UsageError
from rollout.fleet import Outcome, connect_failures, each
from rollout.models import Playbook
from rollout.report import error_line
from rollout.testing import FakeBackend, fake_context


def test_error_line_of_a_plain_error_has_no_results() -> None:
    """An error about no hosts prints the same six keys as always, and no ``results``."""
    line = json.loads(error_line(UsageError("bad --limit", hint="check it")))
    assert line == {"event": "error", "ok": False, "exit_code": 2, "error": "UsageError",
                    "message": "bad --limit", "hint": "check it"}  # fmt: skip


def test_unreachable_host_at_preflight_is_in_the_json_line(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """A pre-flight that cannot reach h2 raises HostsUnreachable whose line lists every host,
    h2 as unreachable with the connection's error and the others as fine."""
    fleet.fakes["h2"].reachable = False
    ctx = fake_context(tmp_path, playbook, fleet)
    with pytest.raises(HostsUnreachable) as caught:
        deploy(ctx, 1)
    line = json.loads(error_line(caught.value))
    assert line["exit_code"] == 5 and line["error"] == "HostsUnreachable"
    assert line["results"] == [
        {"host": "h1", "ok": True, "error": None, "unreachable": False},
        {"host": "h2", "ok": False, "error": "cannot reach host", "unreachable": True},
        {"host": "h3", "ok": True, "error": None, "unreachable": False},
    ]


def test_incomplete_rollback_carries_each_hosts_result(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend
) -> None:
    """A rollback that cannot verify h3 (its node went down) carries h3's failure and the
    verified hosts as data, not only in its message."""
    ctx = fake_context(tmp_path, playbook, fleet, retry_deadline=0.0)
    deploy(ctx, 1)
    deploy(ctx, 2)
    fleet.fakes["h3"].node_up = False
    with pytest.raises(RollbackIncomplete) as caught:
        rollback(ctx, reason="test")
    results = {r.host: r for r in caught.value.results}
    assert results["h1"].ok and results["h2"].ok
    assert not results["h3"].ok and "nodedown" in (results["h3"].error or "")
    line = json.loads(error_line(caught.value))
    assert [r["host"] for r in line["results"] if not r["ok"]] == ["h3"]


def test_each_folds_connect_failures_into_outcomes() -> None:
    """``fleet.each`` runs the work only where the connection came up, and returns every
    host in input order, a failed connection as an unreachable outcome."""
    from rollout.errors import TransportError

    ran: list[str] = []

    def connect(names: object) -> dict[str, Outcome[None]]:
        return {n: Outcome(n, error=TransportError(n, "no route") if n == "b" else None)
                for n in ("a", "b", "c")}  # fmt: skip

    def work(name: str) -> str:
        ran.append(name)
        return name.upper()

    out = each(["c", "b", "a"], work, connect=connect_failures(connect))
    assert list(out) == ["c", "b", "a"] and sorted(ran) == ["a", "c"]
    assert out["b"].unreachable and out["b"].detail == "no route"
    assert out["c"].value == "C" and not out["c"].unreachable
    assert out["b"].summary() == HostOutcome("b", False, "no route", True)


def test_status_json_error_line_lists_the_unreadable_host(tmp_path: Path) -> None:
    """`invoke status --json` with a host whose port refuses connections exits 5, and its
    error line carries that host's result (not only the message)."""
    import contextlib
    import io
    import socket

    from invoke import Program

    import tasks

    with socket.socket() as probe:  # a local port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "known_hosts").write_text("")
    inventory = tmp_path / "fleet.yml"
    inventory.write_text(
        f"all:\n  hosts:\n    h1:\n      ansible_host: 127.0.0.1\n      ansible_port: {port}\n"
        f"      known_hosts_file: {tmp_path / 'known_hosts'}\n"
    )
    out = io.StringIO()
    argv = ["invoke", "status", "--json", "-i", str(inventory), "--ledger", str(tmp_path / "l.db")]
    quiet = contextlib.redirect_stderr(io.StringIO())
    with contextlib.redirect_stdout(out), quiet, pytest.raises(SystemExit) as exited:
        Program(namespace=tasks.ns).run(argv)
    assert exited.value.code == 5
    line = json.loads(out.getvalue().strip().splitlines()[-1])
    assert line["error"] == "HostsUnreachable"
    assert [(r["host"], r["ok"]) for r in line["results"]] == [("h1", False)]
    assert line["results"][0]["error"]
