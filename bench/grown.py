"""``python -m bench.grown``: the reads a command makes, on a fresh ledger and on grown ones.

A week of scheduled ``advance`` calls leaves hundreds of runs and their health samples in the
ledger. This measures, in-process and side by side (rounds interleaved so load drifts hit
every ledger alike), the ledger reads behind the commands an operator runs on it:

- ``advance gate``: what every ``advance`` call reads of the soak so far (``soak``: enough
  healthy rounds recorded for the current phase, and the latest round);
- ``rollback read``: the phases each host was verified at
  (``commands.rollbacks._highest_verified``);
- ``history``: the 20 newest runs, rendered;
- ``report``: the newest run's timeline, rendered.

The ledgers are written through the ledger's own API with sample events shaped like the
soak's (every host's metrics per round); the week changes phase every ``--per-phase`` calls,
as the endurance test's does. Figures are ratios to the fresh ledger (one call).

    .venv/bin/python -m bench.grown --hosts 3 --calls 600,6000 --reps 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rollout.events import Event, Kind
from rollout.history import render_history, render_report
from rollout.ledger import Ledger, RunStatus

INVENTORY = "bench-grown"
METRICS = ("error_rate", "latency_p99_ms", "restarts")


def _sample(phase: int, hosts: int, i: int) -> dict[str, object]:
    values = {
        f"h{n}": {"error_rate": 0.004 + (i % 7) * 1e-4, "latency_p99_ms": 120 + i % 13,
                  "restarts": 0}
        for n in range(1, hosts + 1)
    }  # fmt: skip
    return Event(
        Kind.SAMPLE, "healthy: every metric within its threshold", ok=True,
        data={"phase": phase, "verdict": "healthy", "values": values,
              "thresholds": {m: f"{m} <= 1" for m in METRICS}, "metrics": list(METRICS),
              "hosts": sorted(values), "drifted": [], "breaches_in_row": 0,
              "inconclusive_in_row": 0, "failure_limit": 3},
        ts=time.time(),
    ).to_json()  # fmt: skip


def grow(path: Path, calls: int, hosts: int, per_phase: int) -> None:
    """``calls`` advance-like runs: each records one sample round; a phase every ``per_phase``."""
    with Ledger(path, who="bench", where="bench") as ledger:
        phase = 1
        for i in range(max(calls, 1)):
            run = ledger.start_run(INVENTORY, "advance", ["advance"])
            if i % per_phase == 0:
                phase = min(5, 1 + i // per_phase)
                for n in range(1, hosts + 1):
                    ledger.event(run.id, Kind.VERIFY.value,
                                 Event(Kind.VERIFY, "verified", host=f"h{n}", ok=True,
                                       data={"phase": phase}, ts=ledger.clock.wall()).to_json(),
                                 host=f"h{n}")  # fmt: skip
                ledger.set_phase(INVENTORY, phase, run.id, soak_required=3600)
            ledger.event(run.id, Kind.SAMPLE.value, _sample(phase, hosts, i))
            ledger.finish_run(run.id, RunStatus.SUCCEEDED, "sampled")


def _reads(ledger: Ledger) -> dict[str, Callable[[], object]]:
    from rollout.soakrecord import MIN_HEALTHY_ROUNDS, healthy_rounds, rounds_newest_first

    def gate() -> object:
        state = ledger.state(INVENTORY)
        enough = healthy_rounds(ledger, state, at_most=MIN_HEALTHY_ROUNDS)
        return enough, next(rounds_newest_first(ledger, state), None)

    def verified() -> object:
        return len(ledger.inventory_events(INVENTORY, Kind.VERIFY.value))

    def report() -> object:
        run = ledger.runs(INVENTORY, 1)[0]
        return render_report(run, ledger.events(run.id), ledger.intents(run.id))

    return {
        "advance gate": gate,
        "rollback read": verified,
        "history": lambda: render_history(ledger.runs(INVENTORY, 20)),
        "report": report,
    }


def measure(paths: dict[int, Path], reps: int) -> dict[str, dict[int, float]]:
    """Median seconds per read per ledger size, rounds interleaved across ledgers."""
    ledgers = {n: Ledger(p) for n, p in paths.items()}
    times: dict[str, dict[int, list[float]]] = {}
    try:
        for _ in range(reps):
            for n, ledger in ledgers.items():
                for name, read in _reads(ledger).items():
                    t0 = time.perf_counter()
                    read()
                    times.setdefault(name, {}).setdefault(n, []).append(time.perf_counter() - t0)
    finally:
        for ledger in ledgers.values():
            ledger.close()
    return {k: {n: statistics.median(v) for n, v in per.items()} for k, per in times.items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grown", description=__doc__)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--calls", default="600,6000", help="grown sizes, comma-separated")
    parser.add_argument("--per-phase", type=int, default=120, help="calls between phases")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = [1] + [int(s) for s in args.calls.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-grown-") as tmp:
        paths = {}
        for n in sizes:
            paths[n] = Path(tmp) / f"ledger-{n}.db"
            grow(paths[n], n, args.hosts, args.per_phase)
        sizes_kib = {n: p.stat().st_size // 1024 for n, p in paths.items()}
        medians = measure(paths, args.reps)
    head = " | ".join(f"{n} call(s), {sizes_kib[n]} KiB" for n in sizes)
    print(f"| read | {head} |")
    print("|---|" + "---|" * len(sizes))
    for name, per in medians.items():
        fresh = per[1]
        cells = [f"{per[1] * 1000:.2f} ms"] + [
            f"{per[n] * 1000:.2f} ms ({per[n] / fresh:.1f}x)" for n in sizes[1:]
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
