"""A run's last apply gives the fleet lease back in the same call, and an undo after it takes
the lease back only while the host still holds this run's record (real sh, real flock, the
lab's console stub; the session runs the command locally instead of over SSH)."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from rollout.console import RemoteConsole
from rollout.consolecode import Change
from rollout.errors import ConsoleError
from rollout.fleetrecord import Holder, new_lease_id
from rollout.fleetstate import FleetSide, Op
from rollout.models import FlagState, Host
from rollout.transport.base import MAX_OUTPUT_BYTES, CommandResult
from rollout_lab.release import _STUB

FLAGS = ("new_ui",)
ON = FlagState.of({"new_ui": True})
OFF = FlagState.of({"new_ui": False})


class LocalSession:
    """A session that runs the command on this machine: the state script and the stub run
    exactly as sshd would run them, without the network."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def run(self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float = 60.0,
            max_output: int = MAX_OUTPUT_BYTES) -> CommandResult:  # fmt: skip
        done = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout)
        return CommandResult(self.host.name, " ".join(argv), done.returncode,
                             done.stdout.decode(), done.stderr.decode(), 0.0)  # fmt: skip

    def close(self) -> None:
        pass


@pytest.fixture
def host(tmp_path: Path) -> Host:
    """An SSH-only lab host's release (the console stub) in a temporary directory."""
    release_bin = tmp_path / "release" / "bin" / "foundation"
    release_bin.parent.mkdir(parents=True)
    release_bin.write_text(_STUB.replace("@NODE@", base64.b64encode(b"stub@h").decode()))
    release_bin.chmod(0o755)
    return Host("h1", "127.0.0.1", release_bin=str(release_bin))


def side_of(run_id: str) -> FleetSide:
    holder = Holder("bob", "laptop", 1, None, run_id, "invoke deploy", "lg-" + run_id, "/l", 1.0)
    side = FleetSide("otp", holder, 60, lease_id=new_lease_id(), op_read=Op.TAKE)
    return side


def console(host: Host, side: FleetSide) -> RemoteConsole:
    return RemoteConsole(LocalSession(host), allow=FLAGS, side=side)


def lease_file(host: Host) -> Path:
    return Path(host.state_dir) / "lease"


def test_last_apply_gives_the_lease_back_in_the_same_call(host: Host) -> None:
    """A final apply writes and reads back the record and the flags, then removes the lease;
    the run then has nothing left to release on that host."""
    side = side_of("r-1")
    remote = console(host, side)
    remote.read_flags()
    side.op_read = Op.RENEW
    applied = remote.apply(ON, Change("deploy", 1, last=True))
    assert applied.errors == {} and applied.reading.flags["new_ui"] is True
    state = side.states["h1"]
    assert state.lease is not None and state.lease.status == "released"
    assert state.record is not None and state.record.generation == 1
    assert not lease_file(host).exists()
    assert "h1" in side.given_back


def test_undo_after_the_last_apply_takes_the_lease_back_first(host: Host) -> None:
    """An undo to a host whose lease the last apply gave back takes it again (the record is
    still this run's), then changes and verifies the host under it."""
    side = side_of("r-1")
    remote = console(host, side)
    remote.read_flags()
    side.op_read = Op.RENEW
    remote.apply(ON, Change("deploy", 1, last=True))
    undone = remote.apply(OFF, Change("rollback", 0))
    assert undone.errors == {} and undone.reading.flags["new_ui"] is False
    assert side.lease_id is not None and lease_file(host).read_text().startswith(side.lease_id)
    state = side.states["h1"]
    assert state.record is not None and state.record.generation == 2
    assert "h1" not in side.given_back and not side.lost


def test_undo_never_overwrites_a_change_made_after_the_lease_was_given_back(host: Host) -> None:
    """Another controller that changed the host after the last apply gave the lease back keeps
    its change: this run's undo refuses that host and changes nothing on it."""
    mine, theirs = side_of("r-1"), side_of("r-2")
    remote = console(host, mine)
    remote.read_flags()
    mine.op_read = Op.RENEW
    remote.apply(ON, Change("deploy", 1, last=True))
    other = console(host, theirs)
    other.read_flags()
    theirs.op_read = Op.RENEW
    other.apply(OFF, Change("deploy", 0, last=True))
    with pytest.raises(ConsoleError, match="record changed"):
        remote.apply(ON, Change("rollback", 1))
    state = mine.states["h1"]
    assert state.record is not None and state.record.run_id == "r-2"
    assert console(host, side_of("r-3")).read_flags(Op.PEEK).flags["new_ui"] is False


def test_a_failed_last_apply_keeps_the_lease(host: Host) -> None:
    """A final apply whose console exits non-zero leaves the lease held (released at the end
    of the run as before), so its undo needs no take."""
    side = side_of("r-1")
    remote = console(host, side)
    remote.read_flags()
    side.op_read = Op.RENEW
    bin_path = Path(host.release_bin)
    failing = bin_path.read_text().replace("  rpc)\n", '  rpc)\n    trap "exit 1" EXIT\n')
    bin_path.write_text(failing)
    remote.apply(ON, Change("deploy", 1, last=True))
    state = side.states["h1"]
    assert state.lease is not None and state.lease.status == "renewed"
    assert lease_file(host).exists() and "h1" not in side.given_back
