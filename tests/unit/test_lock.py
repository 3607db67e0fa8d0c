"""The one-run-per-inventory lock: exclusivity, liveness, takeover and exact-id unlock.

Every test that opens a ledger runs on both stores (``ledger_target``: SQLite, PostgreSQL).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import pytest

from rollout.clock import PartsClock, with_parts
from rollout.errors import LockBusy, UsageError
from rollout.ledger import Ledger
from rollout.lock import Liveness, LockHeld, Takeover, process_start

T0 = 1_795_407_120.0  # 2026-11-23T04:12:00Z


class FakeClock:
    """A settable clock whose ``sleep`` advances time instead of waiting."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


MakeLedger = Callable[..., Ledger]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def procs() -> dict[int, str]:
    """The fake process table: pid -> start time; absent pids are dead."""
    return {100: "5000", 200: "6000"}


@pytest.fixture
def make(ledger_target: str, clock: FakeClock, procs: dict[int, str]) -> Iterator[MakeLedger]:
    opened: list[Ledger] = []

    def factory(who: str = "alice", where: str = "deploy-1", pid: int = 100) -> Ledger:
        ledger = Ledger(ledger_target, clock=PartsClock(wall=clock, sleep=clock.sleep), who=who,
                        where=where, pid=pid, probe=procs.get)  # fmt: skip
        opened.append(ledger)
        return ledger

    yield factory
    for ledger in opened:
        ledger.close()


def test_first_acquire_records_the_holder(make: MakeLedger, clock: FakeClock) -> None:
    """An unlocked inventory is taken at once and the holder's identity is stored."""
    ledger = make()
    lock = ledger.acquire_lock("prod", "deploy --phase 3")
    assert lock.id.startswith("lk-") and len(lock.id) > 6
    assert (lock.who, lock.where, lock.pid, lock.pid_start) == ("alice", "deploy-1", 100, "5000")
    assert (lock.started, lock.heartbeat, lock.command) == (T0, T0, "deploy --phase 3")
    assert lock.takeover is None and not lock.stale
    assert ledger.holder("prod") == lock


def test_second_acquire_fails_at_once_naming_the_holder(make: MakeLedger) -> None:
    """A live holder makes a second run fail immediately with everything about the holder."""
    first = make().acquire_lock("prod", "deploy --phase 3")
    with pytest.raises(LockHeld) as caught:
        make(who="bob", pid=200).acquire_lock("prod", "rollback --to 2")
    text = str(caught.value)
    for part in (
        first.id,
        "alice@deploy-1",
        "pid 100",
        "`deploy --phase 3`",
        "since 2026-11-23T04:12:00Z",
    ):
        assert part in text
    assert "holder is alive" in text
    assert f"if it is dead: invoke unlock {first.id}" in text
    assert isinstance(caught.value, LockBusy) and caught.value.holder == first
    assert caught.value.liveness is Liveness.ALIVE


def test_inventories_lock_independently(make: MakeLedger) -> None:
    """Holding one inventory's lock does not block another inventory."""
    ledger = make()
    ledger.acquire_lock("prod", "deploy")
    assert ledger.acquire_lock("staging", "deploy").inventory == "staging"


def test_wait_polls_until_the_deadline_then_raises(make: MakeLedger, clock: FakeClock) -> None:
    """With ``wait`` the acquirer polls at ``poll`` intervals and gives up at the deadline."""
    make().acquire_lock("prod", "deploy")
    with pytest.raises(LockHeld, match=r"still held after waiting 1s"):
        make(who="bob", pid=200).acquire_lock("prod", "deploy", wait=1.0, poll=0.3)
    assert clock.sleeps == pytest.approx([0.3, 0.3, 0.3, 0.1], abs=1e-6)


def test_wait_succeeds_once_the_holder_releases(make: MakeLedger, clock: FakeClock) -> None:
    """A waiting acquirer gets the lock as soon as the holder releases it."""
    holder = make()
    lock = holder.acquire_lock("prod", "deploy")

    def release_then_sleep(seconds: float) -> None:
        holder.release_lock(lock)
        clock.sleep(seconds)

    bob = make(who="bob", pid=200)
    bob.clock = with_parts(bob.clock, sleep=release_then_sleep)
    got = bob.acquire_lock("prod", "deploy", wait=5.0)
    assert got.who == "bob" and got.takeover is None


def test_dead_holder_on_this_host_is_taken_over_and_journaled(
    make: MakeLedger, procs: dict[int, str]
) -> None:
    """A holder whose pid is gone on this host is replaced, flagged stale, and journaled."""
    old = make().acquire_lock("prod", "deploy --phase 3")
    del procs[100]
    bob = make(who="bob", pid=200)
    run = bob.start_run("prod", "rollback --to 2", ["rollback", "--to", "2"])
    lock = bob.acquire_lock("prod", "rollback --to 2", run.id)
    assert lock.stale and lock.takeover is Takeover.STALE and lock.previous == old
    assert bob.holder("prod") == replace(lock, takeover=None, previous=None)
    [event] = bob.events(run.id)
    assert event.kind == "lock.takeover"
    assert event.data["reason"] == "stale" and event.data["liveness"] == "gone"
    assert event.data["previous"] == old.as_data()


def test_reused_pid_counts_as_dead(make: MakeLedger, procs: dict[int, str]) -> None:
    """A holder pid now running with another start time is a different process: stale."""
    make().acquire_lock("prod", "deploy")
    procs[100] = "9999"  # same pid, started later: reused
    bob = make(who="bob", pid=200)
    assert bob.holder_alive(bob.holder("prod")) is False  # type: ignore[arg-type]
    lock = bob.acquire_lock("prod", "deploy")
    assert lock.stale
    [event] = bob.inventory_events("prod", "lock.takeover")
    assert event.run_id is None and event.data["liveness"] == "reused"


def test_holder_on_another_host_is_never_auto_broken(
    make: MakeLedger, procs: dict[int, str], backend: str
) -> None:
    """A holder elsewhere blocks even if its pid is free here: of unknown liveness on SQLite,
    provably alive (its database session lasts) on PostgreSQL."""
    remote = make(where="deploy-2", pid=4242)
    lock = remote.acquire_lock("prod", "deploy")
    here = make(who="bob", pid=200)
    assert 4242 not in procs
    if backend == "postgresql":
        assert here.holder_alive(lock) is True
        with pytest.raises(LockHeld, match=r"holder is alive") as caught:
            here.acquire_lock("prod", "deploy")
        assert caught.value.liveness is Liveness.ALIVE
        return
    assert here.holder_alive(lock) is None
    with pytest.raises(LockHeld, match=r"on another host \(deploy-2\); cannot tell"):
        here.acquire_lock("prod", "deploy")


def test_takeover_always_wins_and_records_the_old_holder(make: MakeLedger) -> None:
    """``takeover=True`` breaks a live holder and journals who it took the lock from."""
    alice = make()
    arun = alice.start_run("prod", "deploy --phase 3", ["deploy"])
    old = alice.acquire_lock("prod", "deploy --phase 3", arun.id)
    bob = make(who="bob", where="laptop", pid=200)
    brun = bob.start_run("prod", "emergency", ["emergency"])
    lock = bob.acquire_lock("prod", "emergency", brun.id, takeover=True)
    assert lock.takeover is Takeover.FORCED and not lock.stale and lock.previous == old
    [event] = bob.events(brun.id)
    assert event.kind == "lock.takeover" and event.data["reason"] == "forced"
    assert event.data["previous"] == old.as_data() and event.data["by"] == "bob@laptop"
    assert [e.kind for e in alice.events(arun.id)] == ["lock.lost"]


def test_release_after_takeover_is_a_silent_no_op(make: MakeLedger) -> None:
    """Releasing a lock that was taken over leaves the new holder in place."""
    alice = make()
    old = alice.acquire_lock("prod", "deploy")
    new = make(who="bob", pid=200).acquire_lock("prod", "emergency", takeover=True)
    alice.release_lock(old)
    assert alice.holder("prod") is not None and alice.holder("prod").id == new.id  # type: ignore[union-attr]


def test_release_frees_the_inventory(make: MakeLedger) -> None:
    """After a release the next run takes the lock without any takeover."""
    alice = make()
    alice.release_lock(alice.acquire_lock("prod", "deploy"))
    assert alice.holder("prod") is None
    assert make(who="bob", pid=200).acquire_lock("prod", "deploy").takeover is None


def test_heartbeat_refreshes_and_detects_a_lost_lock(make: MakeLedger, clock: FakeClock) -> None:
    """A heartbeat moves the timestamp, and raises LockBusy once the lock was taken over."""
    alice = make()
    lock = alice.acquire_lock("prod", "deploy")
    clock.now += 30
    alice.heartbeat(lock)
    assert alice.holder("prod").heartbeat == T0 + 30  # type: ignore[union-attr]
    make(who="bob", pid=200).acquire_lock("prod", "emergency", takeover=True)
    with pytest.raises(LockBusy, match=r"lost the lock .* taken over: .*bob@deploy-1"):
        alice.heartbeat(lock)


def test_unlock_needs_the_exact_id(make: MakeLedger) -> None:
    """A wrong id is refused naming the real holder; the exact id breaks the lock."""
    lock = make().acquire_lock("prod", "deploy --phase 3")
    bob = make(who="bob", pid=200)
    with pytest.raises(UsageError) as caught:
        bob.unlock("prod", "lk-000000000000")
    assert lock.id in str(caught.value) and "alice@deploy-1" in str(caught.value)
    assert bob.holder("prod") == lock
    assert bob.unlock("prod", lock.id) == lock
    assert bob.holder("prod") is None
    [event] = bob.inventory_events("prod", "lock.unlocked")
    assert event.data["previous"] == lock.as_data() and event.data["by"] == "bob@deploy-1"


def test_unlock_of_a_free_inventory_is_a_usage_error(make: MakeLedger) -> None:
    """Unlocking an inventory nobody holds says there is nothing to unlock."""
    with pytest.raises(UsageError, match="not locked"):
        make().unlock("prod", "lk-abc")


def test_acquire_with_unknown_run_is_refused(make: MakeLedger) -> None:
    """A lock can only name a known run of the same inventory."""
    ledger = make()
    with pytest.raises(UsageError, match="r-nope"):
        ledger.acquire_lock("prod", "deploy", "r-nope")
    staging = ledger.start_run("staging", "deploy", ["deploy"])
    with pytest.raises(UsageError, match="not a run against inventory 'prod'"):
        ledger.acquire_lock("prod", "deploy", staging.id)
    assert ledger.holder("prod") is None


def test_real_dead_process_is_detected_and_taken_over(ledger_target: str) -> None:
    """With the real /proc probe, a lock left by an exited process is taken over as stale."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True)  # fmt: skip
    dead_pid = int(child.stdout)
    with Ledger(ledger_target, pid=dead_pid) as ghost:
        ghost.acquire_lock("prod", "deploy")
    with Ledger(ledger_target) as ledger:
        lock = ledger.acquire_lock("prod", "deploy")
    assert lock.stale and lock.previous is not None and lock.previous.pid == dead_pid


def test_process_start_reads_proc(tmp_path: Path) -> None:
    """The real probe sees this process, and not an exited or zombie child."""
    assert process_start(os.getpid())
    assert process_start(0) is None
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(200):  # it exits quickly but is not reaped: a zombie
        if process_start(zombie.pid) is None:
            break
        time.sleep(0.01)
    assert process_start(zombie.pid) is None
    zombie.wait()


def _racer(path: str, n: int, start: Barrier, done: Barrier, results: Any) -> None:
    ledger = Ledger(path, who=f"racer{n}")
    start.wait()
    try:
        lock = ledger.acquire_lock("prod", f"deploy #{n}")
        results.put(("won", n, lock.id))
    except LockHeld as busy:
        results.put(("busy", n, busy.holder.id))
    done.wait()  # the winner stays alive until every loser has tried
    ledger.close()


def test_racing_processes_get_exactly_one_lock(ledger_target: str) -> None:
    """Ten real processes acquiring at the same moment: exactly one wins, the rest see it."""
    ctx = multiprocessing.get_context("fork")
    count = 10
    start, done, results = ctx.Barrier(count), ctx.Barrier(count), ctx.Queue()
    path = ledger_target
    procs = [ctx.Process(target=_racer, args=(path, n, start, done, results)) for n in range(count)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=30) for _ in range(count)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    winners = [o for o in outcomes if o[0] == "won"]
    assert len(winners) == 1
    assert {o[2] for o in outcomes} == {winners[0][2]}
    with Ledger(path) as ledger:
        held = ledger.holder("prod")
    assert held is not None and held.id == winners[0][2]


_HOLD_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    from rollout.ledger import Ledger
    ledger = Ledger(sys.argv[1], where=sys.argv[2])
    run = ledger.start_run("prod", "deploy --phase 1", ["deploy", "--phase", "1"])
    lock = ledger.acquire_lock("prod", "deploy --phase 1", run.id)
    print(lock.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("elsewhere", [False, True], ids=["same-host", "other-host"])
def test_a_controller_killed_holding_the_lock(
    ledger_target: str, backend: str, elsewhere: bool
) -> None:
    """A SIGKILLed holder's lock is taken over without `unlock` where its death is provable:
    on this host (its pid is gone) on both stores, and from another host on PostgreSQL (its
    session ended); on SQLite another host's dead holder still needs `unlock`."""
    where = "ci-runner-7" if elsewhere else None
    here = Ledger(ledger_target)
    proc = subprocess.run(
        [sys.executable, "-c", _HOLD_AND_DIE, ledger_target, where or here.where],
        capture_output=True, text=True, check=False, cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    dead = proc.stdout.strip()
    with here:
        held = here.holder("prod")
        assert held is not None and held.id == dead
        if elsewhere and backend == "sqlite":
            with pytest.raises(LockHeld, match="cannot tell"):
                here.acquire_lock("prod", "deploy")
            return
        deadline = time.monotonic() + 10  # the server notices the closed socket at once
        while here.lock_liveness(held) is Liveness.ALIVE and time.monotonic() < deadline:
            time.sleep(0.05)
        lock = here.acquire_lock("prod", "deploy")
        assert lock.stale and lock.previous is not None and lock.previous.id == dead
        [crashed] = here.reap("prod")
        assert crashed.where == (where or here.where)


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite cannot see another host's holder
def test_a_live_holders_session_is_what_proves_it_alive(make: MakeLedger) -> None:
    """On PostgreSQL a holder elsewhere stays unbreakable exactly as long as its connection
    lives; once it is closed (the process died) the next acquire takes the lock as stale."""
    remote = make(where="deploy-2", pid=4242)
    lock = remote.acquire_lock("prod", "deploy")
    here = make(who="bob", pid=200)
    with pytest.raises(LockHeld):
        here.acquire_lock("prod", "deploy")
    remote.close()
    deadline = time.monotonic() + 10  # the server backend exits just after the socket closes
    while here.lock_liveness(lock) is Liveness.ALIVE and time.monotonic() < deadline:
        time.sleep(0.02)
    assert here.lock_liveness(lock) is Liveness.ENDED
    taken = here.acquire_lock("prod", "deploy")
    assert taken.stale and taken.previous == lock
    [event] = here.inventory_events("prod", "lock.takeover")
    assert event.data["liveness"] == "ended"
