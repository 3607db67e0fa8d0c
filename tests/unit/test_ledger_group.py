"""Group commit of event/intent/settle: real SQLite files and a real PostgreSQL server (every
test runs on both), real threads, no mocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rollout.clock import PartsClock
from rollout.database import open_database
from rollout.errors import UsageError
from rollout.ledger import EventRecord, Intent, Ledger

THREADS, ROUNDS = 50, 20  # each round: intent, event, settle


@pytest.fixture
def path(ledger_target: str) -> str:
    """The ledger under test: a SQLite file or a PostgreSQL database (``ledger_target``)."""
    return ledger_target


def disk_clock() -> float:
    """The wall clock, after 0.1 ms: each write then costs about what a real disk's does.

    ``tmp_path`` may be on tmpfs, where COMMIT needs no fsync and a batch is over before the
    other writers were even scheduled (the GIL, not the disk, decides who queues). The ledger
    calls its clock once per write inside the batch, so this stands in for storage latency and
    makes the batching bound below hold on any filesystem and load.
    """
    time.sleep(0.0001)
    return time.time()


@pytest.fixture(params=[True, False], ids=["grouped", "one-by-one"])
def ledger(path: str, request: pytest.FixtureRequest) -> Iterator[Ledger]:
    grouping = bool(request.param)
    clock = PartsClock(wall=disk_clock)
    with Ledger(path, clock=clock, who="alice", group_commit=grouping) as book:
        yield book


@pytest.fixture
def grouped(path: str) -> Iterator[Ledger]:
    with Ledger(path, who="alice", where="deploy-1") as book:
        yield book


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` in ``count`` threads released together; re-raise the first failure."""
    start, errors = threading.Barrier(count), list[BaseException]()

    def body(i: int) -> None:
        start.wait()
        try:
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a writer never returned"
    if errors:
        raise errors[0]


def _wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_concurrent_writes_all_land_in_few_transactions(ledger: Ledger) -> None:
    """50 threads x 20 rounds of intent/event/settle: every row lands, ids are unique, each
    intent is settled, each thread's events keep its call order; grouped, the commits are far
    fewer than the calls (one by one, exactly one commit per call: fewer rounds, as each
    costs an fsync)."""
    rounds = ROUNDS if ledger._group_commit else 5
    runs = [ledger.start_run(f"inv{n}", "deploy", ["deploy"]) for n in range(4)]
    got_events: list[list[EventRecord]] = [[] for _ in range(THREADS)]
    got_intents: list[list[Intent]] = [[] for _ in range(THREADS)]

    def work(i: int) -> None:
        run = runs[i % len(runs)]
        for n in range(rounds):
            intent = ledger.intent(run.id, f"h{i}", "set_flags", 1, {"n": n})
            got_events[i].append(ledger.event(run.id, "host.ok", {"t": i, "n": n}, host=f"h{i}"))
            got_intents[i].append(ledger.settle(intent.id, True, {"n": n}))

    before = ledger._commits
    _in_threads(THREADS, work)
    commits, calls = ledger._commits - before, THREADS * rounds * 3

    events = [e for run in runs for e in ledger.events(run.id)]
    intents = [x for run in runs for x in ledger.intents(run.id)]
    assert sorted(events, key=lambda e: e.id) == sorted(sum(got_events, []), key=lambda e: e.id)
    assert sorted(intents, key=lambda x: x.id) == sorted(sum(got_intents, []), key=lambda x: x.id)
    assert len({e.id for e in events}) == len({x.id for x in intents}) == THREADS * rounds
    assert all(x.ok and x.finished is not None and x.result == x.detail for x in intents)
    assert all(ledger.open_intents(run.inventory) == [] for run in runs)
    for i, mine in enumerate(got_events):
        assert [e.data["n"] for e in mine] == list(range(rounds))
        assert [e.id for e in mine] == sorted(e.id for e in mine)
        assert {e.inventory for e in mine} == {runs[i % len(runs)].inventory}
    if ledger._group_commit:
        # Every writer blocks in each call, so while one batch commits the others queue up:
        # measured ~calls/16 (batches alternate 1 and ~31), also on 2 cores under CPU load.
        assert commits < calls / 4, (commits, calls)
    else:
        assert commits == calls


def test_a_failing_write_fails_only_its_caller(grouped: Ledger) -> None:
    """In one batch, a settle of a settled intent and an event on an unknown run raise
    UsageError for their own callers; the other callers' rows are committed."""
    run = grouped.start_run("prod", "deploy", ["deploy"])
    settled = grouped.settle(grouped.intent(run.id, "h0", "restart", None, {}).id, True)
    good, outcome = 12, dict[int, object]()

    def work(i: int) -> None:
        try:
            if i == good:
                outcome[i] = grouped.settle(settled.id, False)
            elif i == good + 1:
                outcome[i] = grouped.event("r-nope", "host.ok")
            elif i % 2:
                outcome[i] = grouped.event(run.id, "host.ok", {"i": i})
            else:
                outcome[i] = grouped.intent(run.id, f"h{i}", "set_flags", 1, {"i": i})
        except UsageError as exc:
            outcome[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(good + 2)]
    before = grouped._commits
    with grouped._mutex:  # the first leader waits here while everyone else queues behind it
        for thread in threads:
            thread.start()
        _wait_until(lambda: grouped._leading and len(grouped._queue) >= len(threads) - 1)
    for thread in threads:
        thread.join(timeout=30)
    assert grouped._commits - before <= 2  # the first leader's batch, then all the rest

    assert isinstance(outcome[good], UsageError) and "already settled" in str(outcome[good])
    assert isinstance(outcome[good + 1], UsageError) and "r-nope" in str(outcome[good + 1])
    assert grouped.intents(run.id)[0] == settled  # the failed settle changed nothing
    rows = [outcome[i] for i in range(good)]
    assert [e for e in grouped.events(run.id)] == sorted(
        (r for r in rows if isinstance(r, EventRecord)), key=lambda e: e.id
    )
    assert grouped.intents(run.id)[1:] == sorted(
        (r for r in rows if isinstance(r, Intent)), key=lambda x: x.id
    )
    assert len(grouped.events(run.id)) + len(grouped.intents(run.id)[1:]) == good


def test_intent_is_on_disk_when_it_returns(grouped: Ledger, path: str) -> None:
    """Under concurrency, a second, independent connection sees each intent and event as soon
    as the call returns: the caller may now touch the host."""
    run = grouped.start_run("prod", "deploy", ["deploy"])
    missing: list[str] = []

    def work(i: int) -> None:
        other = open_database(path)
        try:
            for n in range(5):
                intent = grouped.intent(run.id, f"h{i}", "set_flags", 1, {"n": n})
                row = other.execute("SELECT host FROM intents WHERE id = ?", (intent.id,))
                if row.fetchone() != (f"h{i}",):
                    missing.append(f"intent {intent.id}")
                event = grouped.event(run.id, "host.ok", host=f"h{i}")
                if not other.execute("SELECT 1 FROM events WHERE id = ?", (event.id,)).fetchone():
                    missing.append(f"event {event.id}")
        finally:
            other.close()

    _in_threads(16, work)
    assert missing == []


def test_a_write_while_holding_the_mutex_does_not_wait_for_the_batch(path: str) -> None:
    """A thread already holding the ledger's mutex writes directly, even while another thread
    leads a batch that is waiting for that very mutex (a deadlock fails, it does not hang)."""
    ledger = Ledger(path)
    run = ledger.start_run("prod", "deploy", ["deploy"])
    mine: list[EventRecord] = []

    def holder() -> None:
        with ledger._mutex:
            leader.start()
            _wait_until(lambda: ledger._leading)
            mine.append(ledger.event(run.id, "from.holder"))

    leader = threading.Thread(target=ledger.event, args=(run.id, "from.leader"), daemon=True)
    holding = threading.Thread(target=holder, daemon=True)
    holding.start()
    holding.join(timeout=10)
    leader.join(timeout=10)
    assert not holding.is_alive() and not leader.is_alive(), "deadlock"  # leaves it unclosed
    assert [e.kind for e in ledger.events(run.id)] == ["from.holder", "from.leader"]
    assert ledger.events(run.id)[0] == mine[0]
    ledger.close()


def test_a_lone_caller_commits_each_write_at_once(grouped: Ledger, path: str) -> None:
    """Without concurrency each call is a batch of one: one commit per call, nothing pending."""
    run = grouped.start_run("prod", "deploy", ["deploy"])
    before = grouped._commits
    intent = grouped.intent(run.id, "h1", "restart", None, {})
    grouped.event(run.id, "host.ok", host="h1")
    grouped.settle(intent.id, True)
    assert grouped._commits - before == 3 and not grouped._leading and grouped._queue == []
    with pytest.raises(UsageError, match="r-x"):
        grouped.event("r-x", "oops")
    other = open_database(path)
    try:
        assert other.execute("SELECT ok FROM intents WHERE id = ?", (intent.id,)).fetchone() == (1,)
    finally:
        other.close()
