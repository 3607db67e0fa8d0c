"""Evidence: the list of runs and one run's timeline, as text or JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .ledger import EventRecord, Intent, RunRecord, WaveRecord


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def run_json(run: RunRecord) -> dict[str, Any]:
    return {
        "id": run.id, "inventory": run.inventory, "command": run.command, "who": run.who,
        "where": run.where, "pid": run.pid, "started": run.started, "finished": run.finished,
        "status": run.status.value, "reason": run.reason, "summary": run.summary,
    }  # fmt: skip


def render_history(
    runs: Sequence[RunRecord],
    *,
    as_json: bool = False,
    waves: Mapping[str, Sequence[WaveRecord]] | None = None,
) -> str:
    """One line per run, newest first; under it, the waves it applied (run id -> waves)."""
    from .wavereport import history_lines, wave_json

    applied = waves or {}
    if as_json:
        return "\n".join(
            json.dumps({"event": "history.run", **run_json(r),
                        "waves": [wave_json(w) for w in applied.get(r.id, ())]})
            for r in runs
        )  # fmt: skip
    if not runs:
        return "no runs recorded"
    lines = []
    for r in runs:
        took = "" if r.finished is None else f" ({r.finished - r.started:.1f}s)"
        lines.append(
            f"{r.id}  {_when(r.started)}  {r.status.value:<11} {r.who}@{r.where}  {r.command}{took}"
        )
        if r.reason:
            lines.append(f"    reason: {r.reason}")
        if r.summary and r.status.value != "succeeded":
            lines.append(f"    {r.summary}")
        lines.extend(history_lines(applied.get(r.id, ())))
    return "\n".join(lines)


def render_report(
    run: RunRecord,
    events: Sequence[EventRecord],
    intents: Sequence[Intent],
    *,
    as_json: bool = False,
    waves: Sequence[WaveRecord] = (),
) -> str:
    """A run's timeline: every step, per-host result and health sample with its verdict; then
    each wave's judgement, a table per wave and metric."""
    from .wavereport import wave_json, wave_lines

    if as_json:
        out = [json.dumps({"event": "report.run", **run_json(run)})]
        out += [json.dumps(wave_json(w)) for w in waves]
        out += [
            json.dumps(
                {
                    "event": "report.event",
                    "kind": e.kind,
                    "ts": e.ts,
                    "host": e.host,
                    "data": e.data,
                }
            )
            for e in events
        ]
        out += [
            json.dumps(
                {
                    "event": "report.intent",
                    "host": i.host,
                    "action": i.action,
                    "target_phase": i.target_phase,
                    "started": i.started,
                    "finished": i.finished,
                    "ok": i.ok,
                }
            )
            for i in intents
        ]
        return "\n".join(out)
    lines = [
        f"Run {run.id}: {run.command}",
        f"  by {run.who}@{run.where} pid {run.pid}, {_when(run.started)} -> "
        f"{_when(run.finished)}, {run.status.value}",
    ]
    if run.reason:
        lines.append(f"  reason: {run.reason}")
    if run.summary:
        lines.append(f"  summary: {run.summary}")
    lines.append("Timeline:")
    for e in events:
        data: dict[str, Any] = dict(e.data)
        message = str(data.get("message", ""))
        ok = data.get("ok")
        mark = {True: "ok", False: "XX"}.get(ok, "..") if isinstance(ok, bool) else ".."
        host = f"{e.host} " if e.host else ""
        lines.append(f"  {_when(e.ts)} {mark} {e.kind:<12} {host}{message}")
        inner: dict[str, Any] = data["data"] if isinstance(data.get("data"), dict) else {}
        if e.kind == "sample" and inner:
            for name, values in dict(inner.get("values") or {}).items():
                lines.append(f"      {name}: {values}")
            thresholds = dict(inner.get("thresholds") or {})
            if thresholds:
                lines.append("      thresholds: " + "; ".join(map(str, thresholds.values())))
    open_intents = [i for i in intents if i.finished is None]
    if open_intents:
        lines.append("Changes started and never settled (the run died mid-change):")
        for i in open_intents:
            lines.append(f"  {i.host}: {i.action} to phase {i.target_phase} at {_when(i.started)}")
    lines.extend(wave_lines(waves))
    return "\n".join(lines)
