"""Both console paths on real sshd + BEAM lab hosts: erl_call by default (said in the events
and in status), rpc when forced (the smaller e2e set of the fallback), and the cookie never
on a host's command line or in erl_call's environment while erl_call runs."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout.console import RemoteConsole
from rollout.erlcall import ConsolePaths
from rollout.inventory import load_inventory
from rollout.models import Secret
from rollout.playbook import load_playbook
from rollout.transport.ssh import SSHTransport
from rollout_lab import Lab, control, procs
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

from ..fault import faults
from .cli import CLI, PLAYBOOK, Ran

pytestmark = pytest.mark.e2e
LAB_HOSTS = 2
STATES = {p: load_playbook(PLAYBOOK).phase(p).state.as_dict() for p in range(4)}


def ok(ran: Ran) -> Ran:
    assert ran.code == 0, ran.stdout + ran.stderr
    return ran


def flags(lab: Lab) -> dict[str, dict[str, bool | int]]:
    """Every node's flags, read directly (not through the tool under test)."""
    return {h.name: control.read_flags(h) for h in lab.hosts}


def consoles(ran: Ran, event: str) -> dict[str, str]:
    """host -> the console path its ``event`` lines name."""
    return {e["host"]: e["data"].get("console") for e in ran.events() if e["event"] == event}


@pytest.fixture
def cli(clean_lab: Lab, tmp_path: Path) -> Iterator[CLI]:
    yield CLI(clean_lab.inventory, tmp_path / "ledger.db")


def test_erl_call_is_the_default_and_every_host_says_so(cli: CLI, clean_lab: Lab) -> None:
    """deploy reads, applies and verifies through erl_call on every real release; the
    host.read and host.verify events and status (text and JSON) name the path."""
    names = {h.name for h in clean_lab.hosts}
    ran = ok(cli("deploy", "--phase", "1", "--yes", "--no-wait", "--json"))
    assert consoles(ran, "host.read") == dict.fromkeys(names, "erl_call")
    assert consoles(ran, "host.verify") == dict.fromkeys(names, "erl_call")
    assert all(f == STATES[1] for f in flags(clean_lab).values())
    status = ok(cli("status", "--json")).events()[0]
    assert {h["host"]: h["console"] for h in status["hosts"]} == dict.fromkeys(names, "erl_call")
    assert ok(cli("status")).stdout.count("via erl_call") == len(names)


def test_forced_rpc_deploys_rolls_back_and_reports_rpc(clean_lab: Lab, tmp_path: Path) -> None:
    """ROLLOUT_CONSOLE=rpc: deploy 1 -> 2 and a rollback converge through bin/foundation rpc,
    and every event says rpc (the fallback path keeps working end to end)."""
    cli = CLI(clean_lab.inventory, tmp_path / "ledger.db", env={"ROLLOUT_CONSOLE": "rpc"})
    names = {h.name for h in clean_lab.hosts}
    for phase in ("1", "2"):
        ran = ok(cli("deploy", "--phase", phase, "--yes", "--no-wait", "--json"))
        assert consoles(ran, "host.verify") == dict.fromkeys(names, "rpc")
    assert all(f == STATES[2] for f in flags(clean_lab).values())
    ran = ok(cli("rollback", "--reason", "e2e rpc", "--json"))
    assert consoles(ran, "host.verify") == dict.fromkeys(names, "rpc")
    assert all(f == STATES[1] for f in flags(clean_lab).values())
    assert ok(cli("status")).stdout.count("via rpc") == len(names)


def test_a_release_bin_erl_call_cannot_place_falls_back_with_the_reason(
    clean_lab: Lab, tmp_path: Path
) -> None:
    """A release_bin that is a wrapper outside the release (no releases/ beside it): auto
    falls back to rpc, and the event and status say why."""
    where = Path(tempfile.mkdtemp(prefix="rollout-e2e-wrapped-", dir="/tmp"))
    where.chmod(0o755)  # the lab user must reach the wrappers
    wrappers = {}
    for host in clean_lab.hosts:
        wrapper = where / f"{host.name}-bin" / "foundation"
        wrapper.parent.mkdir()
        wrapper.write_text(f'#!/bin/sh\nexec {host.release_bin} "$@"\n')
        wrapper.chmod(0o755)
        wrapper.parent.chmod(0o755)
        wrappers[host.name] = {
            "release_bin": str(wrapper),
            "rollout_state_dir": str(host.release_bin.parent.parent / ".rollout-state"),
        }
    inventory = faults.write_inventory(clean_lab, tmp_path / "wrapped.yml", host_vars=wrappers)
    cli = CLI(inventory, tmp_path / "ledger.db")
    try:
        ran = ok(cli("deploy", "--phase", "1", "--yes", "--no-wait", "--json"))
        status = ok(cli("status")).stdout
    finally:
        shutil.rmtree(where, ignore_errors=True)
    reads = [e for e in ran.events() if e["event"] == "host.read"]
    assert len(reads) == len(clean_lab.hosts)
    assert {e["data"]["console"] for e in reads} == {"rpc"}
    assert all("releases/start_erl.data" in e["data"]["console_fallback"] for e in reads)
    assert "console: rpc, because the release has no" in status
    assert all(f == STATES[1] for f in flags(clean_lab).values())


def _processes() -> dict[int, tuple[str, bytes]]:
    """pid -> (command line, environment) of every process this test may read."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        out[int(entry)] = (cmdline.decode(errors="replace"), environ)
    return out


def test_the_cookie_is_never_on_a_host_command_line(clean_lab: Lab) -> None:
    """While a slow health poll runs through erl_call (release_env carries the cookie, as an
    operator would give it), no process on the host has the cookie in its command line and
    erl_call's environment holds no RELEASE_COOKIE; its private HOME is gone afterwards."""
    lab_host = clean_lab.hosts[0]
    cookie = faults.cookie(lab_host)
    control.set_delay(lab_host, 2.5)
    inventory = load_inventory(clean_lab.inventory)
    host = next(h for h in inventory.hosts if h.name == lab_host.name)
    host = dataclasses.replace(host, release_env=(("RELEASE_COOKIE", Secret(cookie)),))
    session = SSHTransport().connect(host)
    seen: dict[int, tuple[str, bytes]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.update(_processes())
            time.sleep(0.02)

    # the nodes (run_erl, beam) were started by their release with -setcookie: the release's
    # business. This test is about what the call starts on the host: processes new since now.
    before = set(_processes())
    sampler = threading.Thread(target=sample)
    try:
        con = RemoteConsole(
            session, allow=load_playbook(PLAYBOOK).flags, metrics=("error_rate",),
            timeout=20, paths=ConsolePaths(),
        )  # fmt: skip
        con.read_flags()  # one read first (the probe folded in)
        sampler.start()
        health = con.health()
    finally:
        done.set()
        if sampler.is_alive():
            sampler.join()
        session.close()
        control.set_delay(lab_host, 0)
    assert health.reading.console == "erl_call" and health.metrics["error_rate"] is not None
    started = {pid: v for pid, v in seen.items() if pid not in before}
    assert any("ROLLOUT" not in cmd and "dd bs=" in cmd for cmd, _env in started.values())
    # this host's erl_calls only: other test workers on this machine run theirs at the same
    # time (their private HOMEs exist while they run); a session's SSH_CONNECTION ends in the
    # port of the sshd it came through
    erl_calls = {
        pid: v
        for pid, v in started.items()
        if "erl_call" in v[0].split(" ")[0] and _via_port(v[1]) == lab_host.port
    }
    assert erl_calls, "no erl_call process was seen during a 2.5 s call: the sampler is broken"
    leaked = [cmd for cmd, _env in started.values() if cookie in cmd]
    assert not leaked, f"the cookie is on a command line: {leaked}"
    for _cmdline, environ in erl_calls.values():
        assert cookie.encode() not in environ
        assert b"RELEASE_COOKIE=" not in environ
        home = next(v for v in environ.split(b"\0") if v.startswith(b"HOME="))[5:].decode()
        assert home.startswith("/tmp/") and not Path(home).exists()


def _via_port(environ: bytes) -> int | None:
    """The server port of the SSH session a process's environment came from."""
    for item in environ.split(b"\0"):
        if item.startswith(b"SSH_CONNECTION="):
            fields = item.split(b"=", 1)[1].split()
            return int(fields[3]) if len(fields) == 4 else None
    return None


def _sessions(lab: Lab) -> dict[str, set[int]]:
    """host -> its SSH connections: the sshd processes the listener forked (one per
    connection; the pre-auth and user processes are their children)."""
    out = {}
    for host in lab.hosts:
        listener = control.sshd_pid(host)
        out[host.name] = {p for p in faults.sshd_processes(host) if procs.parent_pid(p) == listener}
    return out


def test_a_soak_holds_one_session_per_host_and_polls_with_one_erl_call(
    cli: CLI, clean_lab: Lab
) -> None:
    """A monitor soak keeps one SSH session per host for its whole life, and each poll is one
    erl_call on the host (counted by a logging wrapper around the release's erl_call)."""
    ok(cli("deploy", "--phase", "1", "--yes", "--no-wait"))
    wrapped = []
    for host in clean_lab.hosts:
        real = next((host.release_bin.parent.parent).glob("erts-*/bin/erl_call"))
        moved = real.with_name("erl_call.real")
        real.rename(moved)
        log = real.with_name("erl_call.log")
        real.write_text(f'#!/bin/sh\necho call >> {log}\nexec {moved} "$@"\n')
        real.chmod(0o755)
        log.touch()
        log.chmod(0o666)
        wrapped.append((real, moved, log))
    seen: dict[str, set[int]] = {h.name: set() for h in clean_lab.hosts}
    try:
        proc = cli.popen("monitor", "--soak", "6s", "--interval", "1s", "--json")
        while proc.poll() is None:
            for name, pids in _sessions(clean_lab).items():
                seen[name] |= pids
            time.sleep(0.05)
        out, err = proc.communicate()
        calls = [len(log.read_text().splitlines()) for _real, _moved, log in wrapped]
    finally:
        for real, moved, log in wrapped:
            real.unlink()
            moved.rename(real)
            log.unlink()
    assert proc.returncode == 0, out + err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    polls = sum(1 for e in events if e["event"] == "sample")
    assert polls >= 4, out
    assert all(len(pids) == 1 for pids in seen.values()), seen  # one connection per host
    # the claim's read (the probe folded in), one per poll (and at most a closing read)
    assert all(polls + 1 <= n <= polls + 2 for n in calls), (calls, polls)
