"""Hostile values in every field that reaches a template, a command line or the ledger, and a
canary secret that must never show up in anything the tool writes.

Each hostile value tries to create a file in a marker directory (which the lab user can write)
if it is ever run by a shell or evaluated by a node. A value is either refused as bad input
(exit 2) or carried as data (the command succeeds and shows or records the text verbatim);
either way the marker directory stays empty, every node still answers, and no flag moved.
"""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rollout.ledger import Ledger
from rollout_lab import Lab, control
from rollout_lab.testing import lab_fixture  # noqa: F401

from ..e2e.cli import CLI, Ran
from . import faults
from .helpers import (
    InProcessCLI,
    Watched,
    fault_playbook,
    nodes_answer,
    phases,
    restore,
)

pytestmark = pytest.mark.fault
LAB_HOSTS = 2

#: Each value, if a shell ran it or a node evaluated it, would leave a file in MARK.
CORPUS = {
    "shell-substitution": "$(touch MARK/shell)",
    "backticks": "`touch MARK/backtick`",
    "semicolon": "x; touch MARK/semicolon #",
    "pipe": "x | tee MARK/pipe",
    "elixir-interpolation": '#{File.write!("MARK/interpolation", "x")}',
    "erlang-os-cmd": ':os.cmd(~c"touch MARK/oscmd")',
    "single-quote": "x'; touch MARK/squote; echo '",
    "double-quote": 'x"; File.write!("MARK/dquote", "x"); "',
    "newline": "x\ntouch MARK/newline",
    "4kb": ("$(touch MARK/big);" * 300)[:4096],
    "unicode-bidi": "ok\u202e; touch MARK/bidi\u202c",
}


@pytest.fixture(scope="module")
def marker() -> Iterator[Path]:
    """A directory the lab user may write to; anything in it means a value was executed."""
    path = Path(tempfile.mkdtemp(prefix="rollout-fault-marker-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def hostile(marker: Path) -> dict[str, str]:
    return {name: value.replace("MARK", str(marker)) for name, value in CORPUS.items()}


class Webhook:
    """A local HTTP endpoint that records every POST (path and JSON body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posts.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def with_webhook(data: dict[str, Any]) -> None:
    data["notify"] = {
        "webhook": {"url_env": "ROLLOUT_WEBHOOK_URL", "timeout": "3s",
                    "template": "notify/generic.json.j2"},
        "events": ["deploy.start", "deploy.finish", "rollback.manual"],
    }  # fmt: skip


# -- the corpus, field by field ----------------------------------------------------------------

Case = Callable[[Lab, Path, str], Ran]


def playbook_case(edit: Callable[[dict[str, Any], str], None], *args: str) -> Case:
    """Run ``args`` with a playbook whose data ``edit`` made hostile."""

    def run(lab: Lab, tmp: Path, value: str) -> Ran:
        playbook = fault_playbook(tmp / "hostile.yml", edit=lambda data: edit(data, value))
        return InProcessCLI(lab.inventory, tmp / "ledger.db")(*args, playbook=playbook)

    return run


def inventory_case(variable: str, *args: str) -> Case:
    """Run ``args`` against an inventory where every host's ``variable`` is hostile."""

    def run(lab: Lab, tmp: Path, value: str) -> Ran:
        data: object = {"ROLLOUT_HOSTILE": value} if variable == "release_env" else value
        inventory = faults.write_inventory(
            lab, tmp / "hostile.yml", host_vars={h.name: {variable: data} for h in lab.hosts}
        )
        return InProcessCLI(inventory, tmp / "ledger.db")(
            *args, playbook=fault_playbook(tmp / "fault.yml")
        )

    return run


def option_case(*args: str) -> Case:
    """Run ``args`` with the hostile value as the last option's argument."""

    def run(lab: Lab, tmp: Path, value: str) -> Ran:
        return InProcessCLI(lab.inventory, tmp / "ledger.db")(
            *args, value, playbook=fault_playbook(tmp / "fault.yml")
        )

    return run


def _flag_name(data: dict[str, Any], value: str) -> None:
    data["flags"][value] = False
    data["phases"][0]["set"][value] = True


def _flag_value(data: dict[str, Any], value: str) -> None:
    data["phases"][0]["set"]["use_sync_test_apis"] = value


def _phase_text(data: dict[str, Any], value: str) -> None:
    data["phases"][0]["name"] = value
    data["phases"][0]["validation"] = value


#: field -> (how to run a case, whether every hostile value must be refused)
FIELDS: dict[str, tuple[Case, bool]] = {
    "playbook flag name": (playbook_case(_flag_name, "deploy", "--phase", "1", "--yes",
                                         "--no-wait"), True),
    "playbook flag value": (playbook_case(_flag_value, "deploy", "--phase", "1", "--yes",
                                          "--no-wait"), True),
    "phase name and validation text": (playbook_case(_phase_text, "plan", "--phase", "1"),
                                       False),
    # one host is enough to carry an inventory value through SSH and the console
    "inventory ansible_host": (inventory_case("ansible_host", "status", "--limit", "h1"),
                               True),
    "inventory release_bin": (inventory_case("release_bin", "status", "--limit", "h1"), True),
    "inventory release_env value": (inventory_case("release_env", "status", "--limit", "h1"),
                                    False),
    "inventory service": (inventory_case("service", "status", "--limit", "h1"), False),
    "inventory restart_command": (inventory_case("restart_command", "status", "--limit",
                                                 "h1"), False),
    "--limit": (option_case("status", "--limit"), True),
}  # fmt: skip


@pytest.fixture
def clean(lab: Lab, marker: Path) -> Lab:
    restore(lab)
    for leftover in marker.iterdir():
        leftover.unlink()
    return lab


def assert_harmless(lab: Lab, marker: Path) -> None:
    """Nothing was executed, every node answers, and no flag moved."""
    assert sorted(p.name for p in marker.iterdir()) == []
    assert nodes_answer(lab)
    assert phases(lab) == {h.name: 0 for h in lab.hosts}


@pytest.mark.scenario("hostile values refused or carried safely")
@pytest.mark.parametrize("field", list(FIELDS))
def test_hostile_values_are_refused_or_carried(
    clean: Lab, marker: Path, tmp_path: Path, field: str
) -> None:
    """Every corpus value in ``field`` is refused (exit 2) or carried as plain data (exit 0);
    none is executed, every node stays up, no flag changes."""
    case, strict = FIELDS[field]
    outcomes: dict[str, int] = {}
    for name, value in hostile(marker).items():
        work = tmp_path / name
        work.mkdir()
        ran = case(clean, work, value)
        outcomes[name] = ran.code
        if strict or ran.code != 0:
            assert ran.code == 2, f"{field}={name!r}: {ran.stdout}{ran.stderr}"
            assert "error:" in ran.stderr
        if field.startswith("phase name") and ran.code == 0:
            assert value in ran.stdout  # carried verbatim into the plan's title
        assert sorted(p.name for p in marker.iterdir()) == [], f"{field}={name!r} executed"
    assert_harmless(clean, marker)
    if not strict:  # line breaks never pass: a value is one line of text
        assert outcomes["newline"] == 2, outcomes


#: What the erl_call console function takes from the host's environment (rollout.erlcall)
ERL_CALL_ENV = ("RELEASE_NODE", "RELEASE_COOKIE", "RELEASE_DISTRIBUTION")


@pytest.mark.scenario("hostile release_env on the erl_call path")
def test_hostile_release_env_is_data_on_the_erl_call_path(
    clean: Lab, marker: Path, tmp_path: Path
) -> None:
    """With rollout_console: erl_call, every corpus value as the node name, the cookie or the
    distribution is refused (exit 2), fails as a console error (exit 5: a hostile cookie is a
    wrong one) or is overridden by the release's own env.sh (the lab's sets the node name
    and distribution; exit 0); none is executed, every node stays up, no flag changes, and
    the hostile cookie is in no output."""
    for variable in ERL_CALL_ENV:
        for name, value in hostile(marker).items():
            work = tmp_path / f"{variable}-{name}"
            work.mkdir()
            inventory = faults.write_inventory(
                clean, work / "hostile.yml",
                host_vars={h.name: {"rollout_console": "erl_call",
                                    "release_env": {variable: value}} for h in clean.hosts},
            )  # fmt: skip
            ran = InProcessCLI(inventory, work / "ledger.db")(
                "status", "--limit", "h1", playbook=fault_playbook(work / "fault.yml")
            )
            assert ran.code in (0, 2, 5), f"{variable}={name!r}: {ran.stdout}{ran.stderr}"
            if variable == "RELEASE_COOKIE" and ran.code != 2:  # not refused as input
                assert ran.code == 5, f"a wrong cookie must fail: {ran.stdout}{ran.stderr}"
            if ran.code == 5:
                assert "erl_call" in ran.stdout + ran.stderr, ran.stdout + ran.stderr
            if variable == "RELEASE_COOKIE" and len(value) >= 6:
                assert value not in ran.stdout + ran.stderr
            assert sorted(p.name for p in marker.iterdir()) == [], f"{variable}={name!r} ran"
    assert_harmless(clean, marker)


@pytest.mark.scenario("hostile --reason is data: ledger and webhook verbatim")
def test_hostile_reason_reaches_ledger_and_webhook_verbatim(
    clean: Lab, marker: Path, tmp_path: Path, webhook: Webhook
) -> None:
    """`rollback --to 0 --reason X` records X verbatim in the ledger and in the notification's
    JSON, runs nothing, and leaves every host as it was."""
    playbook = fault_playbook(tmp_path / "hook.yml", edit=with_webhook)
    ledger = tmp_path / "ledger.db"
    cli = InProcessCLI(clean.inventory, ledger, env={"ROLLOUT_WEBHOOK_URL": webhook.url})
    for name, value in hostile(marker).items():
        before = len(webhook.posts)
        ran = cli("rollback", "--to", "0", "--reason", value, playbook=playbook)
        assert ran.code == 0, f"{name}: {ran.stdout}{ran.stderr}"
        with Ledger(ledger) as book:
            assert book.runs()[0].reason == value, name
        bodies = [json.loads(body) for _path, body in webhook.posts[before:]]
        assert [b["notification"]["reason"] for b in bodies] == [value], name
        assert sorted(p.name for p in marker.iterdir()) == [], f"--reason {name!r} executed"
    assert_harmless(clean, marker)


# -- the canary secret ---------------------------------------------------------------------------

WRAPPER = """#!/bin/sh
# Records the command lines from this process up to sshd, then runs the real release.
log={log}
pid=$$
while [ -n "$pid" ] && [ "$pid" != 1 ]; do
  printf '%s\\n' "$(tr '\\0' ' ' < /proc/$pid/cmdline)" >> "$log"
  case "$(cat /proc/$pid/comm)" in sshd*) break ;; esac
  pid=$(awk '{{print $4}}' /proc/$pid/stat)
done
printf -- '--\\n' >> "$log"
exec {real} "$@"
"""


def wrapped_release_bins(lab: Lab, where: Path) -> dict[str, Path]:
    """Per host, a release_bin that logs its process ancestry (to ``where``/<host>.log)."""
    bins = {}
    for host in lab.hosts:
        log = where / f"{host.name}.log"
        log.touch()
        log.chmod(0o666)
        script = where / f"{host.name}-foundation"
        script.write_text(WRAPPER.format(log=log, real=host.release_bin))
        script.chmod(0o755)
        bins[host.name] = script
    return bins


@pytest.mark.scenario("canary secret appears in no output")
def test_canary_secret_never_leaks(clean: Lab, tmp_path: Path, webhook: Webhook) -> None:
    """The real cookie (needed for the console to work) and a canary token in release_env, and
    a token in the webhook URL, appear in no stdout, stderr, --json line, ledger byte,
    notification body, or remote SSH command line, across good runs and failing ones."""
    where = Path(tempfile.mkdtemp(prefix="rollout-fault-canary-", dir="/tmp"))
    where.chmod(0o755)
    try:
        canary = "canary-" + secrets.token_hex(12)
        token = "hook-" + secrets.token_hex(12)
        cookies = {h.name: faults.cookie(h) for h in clean.hosts}
        secrets_ = [canary, token, *cookies.values()]
        bins = wrapped_release_bins(clean, where)
        inventory = faults.write_inventory(
            clean,
            tmp_path / "canary.yml",
            host_vars={
                h.name: {
                    "release_bin": str(bins[h.name]),
                    "release_env": {"RELEASE_COOKIE": cookies[h.name], "ROLLOUT_CANARY": canary},
                    # the wrapper lives in a root-owned dir: keep the fleet state by the release
                    "rollout_state_dir": str(h.release_bin.parent.parent / ".rollout-state"),
                }
                for h in clean.hosts
            },
        )
        playbook = fault_playbook(tmp_path / "canary-pb.yml", edit=with_webhook)
        ledger = tmp_path / "ledger.db"
        cli = CLI(inventory, ledger, env={"ROLLOUT_WEBHOOK_URL": f"{webhook.url}/{token}"})
        outputs: list[str] = []

        def run(*args: str, expect: int = 0) -> Ran:
            ran = cli(*args, playbook=playbook)
            outputs.extend((ran.stdout, ran.stderr))
            assert ran.code == expect, f"{args}: {ran.stdout}{ran.stderr}"
            return ran

        run("status")
        run("status", "--json")
        run("deploy", "--phase", "1", "--yes", "--no-wait")
        run("plan", "--phase", "2", "--json")
        watched = Watched(cli, "deploy", "--phase", "2", "--yes", "--no-wait", playbook=playbook)
        done = watched.finish(timeout=120)
        assert done.code == 0, done.text
        outputs.extend((done.stdout, done.stderr))
        run("rollback", "--reason", "canary check")
        control.stop_node(clean.hosts[1])  # failing paths print console errors
        run("status", expect=5)
        run("deploy", "--phase", "2", "--yes", "--no-wait", "--json", expect=5)
        control.start_node(clean.hosts[1])
        # an INI inventory whose release_env value a space split: the error must not quote it
        ini = tmp_path / "broken.ini"
        ini.write_text(f'[app]\nh1 release_env={{"RELEASE_COOKIE": "{cookies["h1"]}"}}\n')
        broken = CLI(ini, ledger)("status")
        assert broken.code == 2, broken.stdout + broken.stderr
        outputs.extend((broken.stdout, broken.stderr))

        assert webhook.posts, "no notification was sent"
        assert all(path == f"/{token}" for path, _body in webhook.posts)
        written = {
            "output": "\n".join(outputs).encode(),
            "ledger": b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*")),
            "webhook bodies": b"\n".join(body for _path, body in webhook.posts),
        }
        for what, data in written.items():
            for secret in secrets_:
                assert secret.encode() not in data, f"a secret leaked into the {what}"

        ancestry = "\n".join((where / f"{h.name}.log").read_text() for h in clean.hosts)
        assert "timeout -k" in ancestry and "sshd" in ancestry  # the SSH command line is there
        for secret in secrets_:
            assert secret not in ancestry, "a secret is on the remote command line"
    finally:
        shutil.rmtree(where, ignore_errors=True)
