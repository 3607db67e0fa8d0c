"""The host-side state script (real sh, real flock) and the parsing of what it prints."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from rollout.fleetrecord import Holder, Record, new_lease_id, parse_state, shown
from rollout.fleetstate import CONFLICT_STATUS, LOADER, Op, header, script_stdin

HOLDER = Holder("bob", "laptop", 1, None, "r-1", "invoke deploy --phase 1", "lg-1", "/l", 1.0)


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path]:
    """A fake release script (prints one console result) and a state directory."""
    release = tmp_path / "rel"
    release.write_text(
        '#!/bin/sh\necho "ROLLOUT-RESULT/1 {}"; echo ran >> "$(dirname "$0")/runs"\n'
    )
    release.chmod(0o755)
    return release, tmp_path / "state"


def call(host: tuple[Path, Path], op: Op, lease: str | None, *, ttl: int = 30,
         replace: str | None = None, record: Record | None = None) -> tuple[int, str]:  # fmt: skip
    release, state = host
    stdin = script_stdin() + "RELEASE_COOKIE=x\n\n"
    stdin += header(op, lease, ttl, replace, HOLDER, record) + "body"
    done = subprocess.run(["sh", "-c", LOADER, str(release), str(state)], input=stdin,
                          text=True, capture_output=True, timeout=30)  # fmt: skip
    return done.returncode, done.stdout


def runs(host: tuple[Path, Path]) -> int:
    path = host[0].parent / "runs"
    return len(path.read_text().splitlines()) if path.exists() else 0


def record(generation: int, reason: str = "why") -> Record:
    return Record("otp", "r-1", "bob", "laptop", "lg-1", "/l", "deploy", "deploy", 1,
                  generation, 2.0, reason=reason)  # fmt: skip


def test_take_is_refused_while_another_lease_lives_and_nothing_runs(
    host: tuple[Path, Path],
) -> None:
    """A second lease id is refused (exit 75, the holder named) and the console never runs."""
    a, b = new_lease_id(), new_lease_id()
    assert call(host, Op.TAKE, a)[0] == 0
    code, out = call(host, Op.TAKE, b)
    state = parse_state(out)
    assert code == CONFLICT_STATUS and state and state.lease and state.lease.status == "held"
    assert state.lease.id == a and state.lease.holder == HOLDER
    assert runs(host) == 1


def test_apply_writes_the_record_only_under_our_lease(host: tuple[Path, Path]) -> None:
    """An apply with our lease writes and reads back the record; one without it changes
    nothing (no record, no console call) and reports the lease lost."""
    a, b = new_lease_id(), new_lease_id()
    call(host, Op.TAKE, a)
    code, out = call(host, Op.APPLY, a, record=record(1))
    state = parse_state(out)
    assert code == 0 and state and state.raw_record == record(1).to_json()
    code, out = call(host, Op.APPLY, b, record=record(2))
    lost = parse_state(out)
    assert code == CONFLICT_STATUS and lost and lost.lease and lost.lease.status == "lost"
    assert lost.record == record(1) and runs(host) == 2


def test_expired_lease_is_taken_over_and_the_previous_holder_named(host: tuple[Path, Path]) -> None:
    """A lease past its expiry (host clock) is taken by another run, naming the old one."""
    a, b = new_lease_id(), new_lease_id()
    call(host, Op.TAKE, a, ttl=0)
    import time

    time.sleep(1.1)
    code, out = call(host, Op.TAKE, b)
    state = parse_state(out)
    assert code == 0 and state and state.lease and state.lease.status == "taken"
    assert state.lease.previous_id == a and state.lease.previous == HOLDER


def test_forced_take_and_exact_clear(host: tuple[Path, Path]) -> None:
    """An emergency (replace '*') takes a live lease; clear removes only the exact id."""
    a, b = new_lease_id(), new_lease_id()
    call(host, Op.TAKE, a)
    assert call(host, Op.TAKE, b, replace="*")[0] == 0
    _, out = call(host, Op.CLEAR, None, replace=a)
    assert "lease notmine" in out
    _, out = call(host, Op.CLEAR, None, replace=b)
    assert "lease cleared" in out
    assert call(host, Op.TAKE, a)[0] == 0


def test_racing_takes_leave_exactly_one_holder(host: tuple[Path, Path]) -> None:
    """Twenty concurrent takes of one host (flock): exactly one wins, the rest are refused."""
    ids = [new_lease_id() for _ in range(20)]
    codes: dict[str, int] = {}

    def take(lease: str) -> None:
        codes[lease] = call(host, Op.TAKE, lease)[0]

    threads = [threading.Thread(target=take, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes.values()).count(0) == 1
    assert set(codes.values()) == {0, CONFLICT_STATUS}


def test_hostile_record_is_data(host: tuple[Path, Path], tmp_path: Path) -> None:
    """A crafted reason is stored and read back verbatim, never run, and shown escaped."""
    a = new_lease_id()
    call(host, Op.TAKE, a)
    evil = f"$(touch {tmp_path}/pwned)`id`\n\x1b[31mred\u202e"
    _, out = call(host, Op.APPLY, a, record=record(1, evil))
    state = parse_state(out)
    assert state and state.record and not (tmp_path / "pwned").exists()
    assert "\x1b" not in state.record.story() and "\u202e" not in state.record.story()
    assert "\\u001b" in shown(evil)


def test_release_gives_back_only_our_lease(host: tuple[Path, Path]) -> None:
    """Release by another id leaves the lease; by ours removes it (no console call)."""
    a, b = new_lease_id(), new_lease_id()
    call(host, Op.TAKE, a)
    assert "notmine" in call(host, Op.RELEASE, b)[1]
    assert "released" in call(host, Op.RELEASE, a)[1]
    assert runs(host) == 1
    assert call(host, Op.TAKE, b)[0] == 0
