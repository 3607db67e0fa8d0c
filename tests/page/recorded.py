"""Recorded runs as data files: dump a run from a ledger, and rebuild it in a fresh ledger.

A recorded run (``tests/data/runs/*.json``) is what the ledger's public read API returned for
one real run against the lab (``record_runs.py`` made them): the run, its events, its intents
and the inventory-level events around it. :func:`replay` writes the same run into a new ledger
through the public write API (``start_run``, ``event``, ``intent``, ``settle``,
``set_paused``, ``approve``, ``finish_run``) with a clock that returns the recorded times, so
the page rendered from it shows the recorded moments exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rollout.clock import PartsClock
from rollout.ledger import Ledger, RunStatus

RUNS = Path(__file__).resolve().parents[1] / "data" / "runs"


def dump(ledger: Ledger, run_id: str) -> dict[str, Any]:
    """One run as plain data, read through the ledger's public API only."""
    run = ledger.run(run_id)
    end = run.finished if run.finished is not None else float("inf")
    around = [e for e in ledger.inventory_events(run.inventory)
              if e.run_id is None and run.started <= e.ts <= end]  # fmt: skip
    record = asdict(run)
    record["status"] = run.status.value
    return {
        "run": record,
        "events": [asdict(e) for e in ledger.events(run_id)],
        "intents": [asdict(i) for i in ledger.intents(run_id)],
        "around": [asdict(e) for e in around],
    }


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RUNS / f"{name}.json").read_text(encoding="utf-8"))
    return data


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def replay(data: dict[str, Any], path: Path) -> tuple[Ledger, str]:
    """Write the recorded run into a new ledger at ``path``; return it and the new run id."""
    run = data["run"]
    clock = _Clock(run["started"])
    ledger = Ledger(path, clock=PartsClock(wall=clock), who=run["who"], where=run["where"],
                    pid=run["pid"], probe=lambda _pid: None)  # fmt: skip
    clock.now = run["started"]
    new = ledger.start_run(run["inventory"], run["command"], run["argv"], run["reason"])
    steps: list[tuple[float, int, Callable[[], None]]] = []
    intents: dict[int, int] = {}

    def event(e: dict[str, Any]) -> Callable[[], None]:
        return lambda: ledger.event(new.id, e["kind"], e["data"], host=e["host"]) and None

    def inventory_event(e: dict[str, Any]) -> Callable[[], None]:
        d = e["data"]
        if e["kind"] in ("inventory.paused", "inventory.resumed"):
            paused = e["kind"] == "inventory.paused"
            return lambda: ledger.set_paused(run["inventory"], paused, d["who"],
                                             d.get("reason")) and None  # fmt: skip
        if e["kind"] == "phase.approved":
            return lambda: ledger.approve(run["inventory"], d["phase"], d["who"], d.get("note"))
        return lambda: None

    def intent(i: dict[str, Any]) -> Callable[[], None]:
        def go() -> None:
            made = ledger.intent(new.id, i["host"], i["action"], i["target_phase"], i["detail"])
            intents[i["id"]] = made.id

        return go

    def settle(i: dict[str, Any]) -> Callable[[], None]:
        return lambda: ledger.settle(intents[i["id"]], bool(i["ok"]), i["result"]) and None

    for n, e in enumerate(data["events"]):
        steps.append((e["ts"], n, event(e)))
    for n, e in enumerate(data["around"]):
        steps.append((e["ts"], n, inventory_event(e)))
    for n, i in enumerate(data["intents"]):
        steps.append((i["started"], n, intent(i)))
        if i["finished"] is not None:
            steps.append((i["finished"], n, settle(i)))
    for ts, _n, step in sorted(steps, key=lambda s: (s[0], s[1])):
        clock.now = ts
        step()
    if run["finished"] is not None:
        clock.now = run["finished"]
        ledger.finish_run(new.id, RunStatus(run["status"]), run["summary"])
    return ledger, new.id
