"""Host keys fail closed: unknown and changed keys are refused before anything changes,
--accept-new-host-keys pins only unknown keys, and a missing or unparseable known_hosts file
is bad input (exit 2), never "no keys, so accept all"."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import paramiko
import pytest

from rollout_lab import Lab
from rollout_lab.testing import lab_fixture  # noqa: F401

from ..e2e.cli import CLI, Ran
from . import faults
from .helpers import fault_playbook, phases, restore

pytestmark = pytest.mark.fault
LAB_HOSTS = 2
DEPLOY_1 = ("deploy", "--phase", "1", "--yes", "--no-wait")


@pytest.fixture
def keys_lab(lab: Lab) -> Lab:
    restore(lab)
    return lab


def fingerprint(line: str) -> str:
    """OpenSSH's SHA256 fingerprint of a known_hosts line's key."""
    blob = base64.b64decode(line.split()[2])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def pinned_lines(lab: Lab) -> list[str]:
    return lab.known_hosts.read_text().splitlines()


def another_ed25519(tmp_path: Path) -> str:
    """``ssh-ed25519 AAAA...`` of a fresh, valid key that no lab host has."""
    path = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    kind, blob, *_ = path.with_suffix(".pub").read_text().split()
    return f"{kind} {blob}"


def with_known_hosts(lab: Lab, tmp_path: Path, text: str | None) -> tuple[CLI, Path]:
    """A CLI whose inventory names a known_hosts file holding ``text`` (None: no file)."""
    known = tmp_path / "known_hosts"
    if text is not None:
        known.write_text(text)
    inventory = faults.write_inventory(lab, tmp_path / "inv.yml", known_hosts=known)
    return CLI(inventory, tmp_path / "ledger.db"), known


def nothing_changed(lab: Lab, ran: Ran) -> None:
    assert "verified at" not in ran.stdout
    assert phases(lab) == {h.name: 0 for h in lab.hosts}


@pytest.mark.scenario("host keys: unknown key refused with its fingerprint")
def test_unknown_key_is_refused_with_fingerprint(keys_lab: Lab, tmp_path: Path) -> None:
    """h1 missing from known_hosts: deploy exits 5 showing h1's real fingerprint; no change."""
    real = pinned_lines(keys_lab)
    cli, known = with_known_hosts(keys_lab, tmp_path, real[1] + "\n")
    ran = cli(*DEPLOY_1, playbook=fault_playbook(tmp_path / "pb.yml"))
    assert ran.code == 5, ran.stdout + ran.stderr
    assert "unknown host key" in ran.stderr and fingerprint(real[0]) in ran.stderr
    assert known.read_text() == real[1] + "\n"  # nothing pinned behind the operator's back
    nothing_changed(keys_lab, ran)


@pytest.mark.scenario("host keys: changed key refused")
@pytest.mark.parametrize("impostor", ["same-type", "other-type"])
def test_changed_key_is_refused(keys_lab: Lab, tmp_path: Path, impostor: str) -> None:
    """h1 pinned with another valid key (ed25519, or ECDSA): HOST KEY CHANGED, exit 5, and
    no host changes, also with --accept-new-host-keys, which leaves the file as it was."""
    real = pinned_lines(keys_lab)
    if impostor == "same-type":
        other = another_ed25519(tmp_path)
    else:
        key = paramiko.ECDSAKey.generate()
        other = f"{key.get_name()} {key.get_base64()}"
    text = f"{real[0].split()[0]} {other}\n{real[1]}\n"
    cli, known = with_known_hosts(keys_lab, tmp_path, text)
    playbook = fault_playbook(tmp_path / "pb.yml")
    for accept in ((), ("--accept-new-host-keys",)):
        ran = cli(*DEPLOY_1, *accept, playbook=playbook)
        assert ran.code == 5, ran.stdout + ran.stderr
        assert "HOST KEY CHANGED" in ran.stderr and fingerprint(real[0]) in ran.stderr
        assert known.read_text() == text
        nothing_changed(keys_lab, ran)


@pytest.mark.scenario("host keys: --accept-new-host-keys pins unknown keys")
def test_accept_new_pins_unknown_keys_and_says_so(keys_lab: Lab, tmp_path: Path) -> None:
    """An empty known_hosts and --accept-new-host-keys: each key is pinned, its fingerprint
    printed; the next run needs no flag and trusts exactly those keys."""
    cli, known = with_known_hosts(keys_lab, tmp_path, "")
    playbook = fault_playbook(tmp_path / "pb.yml")
    ran = cli("status", "--accept-new-host-keys", "--json", playbook=playbook)
    assert ran.code == 0, ran.stdout + ran.stderr
    real = pinned_lines(keys_lab)
    pins = [e for e in ran.events() if e.get("event") == "warning" and "pinned" in e["message"]]
    assert sorted(e["data"]["fingerprint"] for e in pins) == sorted(map(fingerprint, real))
    assert sorted(known.read_text().splitlines()) == sorted(real)
    assert cli("status", playbook=playbook).code == 0


@pytest.mark.scenario("host keys: missing known_hosts file is an error")
def test_missing_known_hosts_is_bad_input(keys_lab: Lab, tmp_path: Path) -> None:
    """No known_hosts file: deploy and status exit 2 and touch nothing (never accept-all);
    only --accept-new-host-keys creates it, printing every key it pins."""
    cli, known = with_known_hosts(keys_lab, tmp_path, None)
    playbook = fault_playbook(tmp_path / "pb.yml")
    for args in (DEPLOY_1, ("status",)):
        ran = cli(*args, playbook=playbook)
        assert ran.code == 2, ran.stdout + ran.stderr
        assert f"known_hosts file {known} does not exist" in ran.stderr
        assert not known.exists()
        nothing_changed(keys_lab, ran)
    ran = cli("status", "--accept-new-host-keys", playbook=playbook)
    assert ran.code == 0, ran.stdout + ran.stderr
    real = pinned_lines(keys_lab)
    assert all(fingerprint(line) in ran.stdout for line in real)
    assert known.stat().st_mode & 0o077 == 0  # created private


@pytest.mark.scenario("host keys: unparseable known_hosts file is an error")
def test_unparseable_known_hosts_is_bad_input(keys_lab: Lab, tmp_path: Path) -> None:
    """A known_hosts with a line that is not an entry: exit 2 naming file and line, with or
    without --accept-new-host-keys; the file is left as it was."""
    real = pinned_lines(keys_lab)
    text = f"{real[0]}\nnot a known_hosts entry\n{real[1]}\n"
    cli, known = with_known_hosts(keys_lab, tmp_path, text)
    playbook = fault_playbook(tmp_path / "pb.yml")
    for accept in ((), ("--accept-new-host-keys",)):
        ran = cli(*DEPLOY_1, *accept, playbook=playbook)
        assert ran.code == 2, ran.stdout + ran.stderr
        assert f"{known}:2" in ran.stderr and "unparseable known_hosts line" in ran.stderr
        assert known.read_text() == text
        nothing_changed(keys_lab, ran)
