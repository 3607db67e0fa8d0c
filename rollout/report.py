"""Rendering: events to terminal lines or JSON lines, and reports to tables.

Renderers return strings or write to an injected stream; nothing else in the engine prints.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from .errors import RolloutError, SpansHosts
from .events import Event, Kind
from .flagvalues import shown_flags
from .models import Observed, Playbook, format_value
from .yamlsrc import format_duration


def _symbols(stream: TextIO) -> tuple[str, str, str]:
    encoding = (getattr(stream, "encoding", None) or "").lower()
    if "utf" in encoding:
        return "✓", "✗", "•"
    return "ok", "XX", "-"


class Reporter:
    """Writes events as they happen: human lines, or one JSON object per line (``--json``)."""

    def __init__(self, stream: TextIO | None = None, *, as_json: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.as_json = as_json
        self.run_id: str | None = None
        self.good, self.bad, self.dot = _symbols(self.stream)
        self.live: Any = None
        if not as_json and getattr(self.stream, "isatty", lambda: False)():
            from rich.console import Console

            from .live import LiveSoak

            self.live = LiveSoak(Console(file=self.stream, highlight=False))

    def __call__(self, event: Event) -> None:
        if event.kind is Kind.RUN_START:
            self.run_id = str(event.data.get("run") or "") or None
        if self.as_json:
            self.write(json.dumps(event.to_json(self.run_id), sort_keys=True, default=str))
            return
        if self.live is not None:
            if self.live.handles(event):
                self.live(event)
                return
            if event.kind in (Kind.ROLLBACK, Kind.RUN_FINISH):
                self.live.stop()
        line = self.render(event)
        if line is not None:
            self.write(line)

    def write(self, line: str) -> None:
        if self.live is not None and self.live.live is not None:
            self.live.console.print(line, markup=False, highlight=False)
            return
        self.stream.write(line + "\n")
        self.stream.flush()

    def render(self, event: Event) -> str | None:
        """One human line for an event, or None for events only JSON shows."""
        mark = {True: self.good, False: self.bad, None: self.dot}[event.ok]
        if event.kind is Kind.PLAN:
            return self._render_plan(event)
        if event.kind in (Kind.READ,) and event.ok:
            return None  # the plan shows what was read
        if event.kind is Kind.RUN_FINISH:
            return f"{mark} {event.message}"
        host = f"{event.host:<12} " if event.host else ""
        prefix = {Kind.WARNING: "! ", Kind.UNDO: "<< ", Kind.ROLLBACK: "<< "}.get(event.kind, "")
        hint = event.data.get("hint")
        text = f"  {mark} {host}{prefix}{event.message}"
        if hint and event.ok is False:
            text += f"\n      next: {hint}"
        return text

    def _render_plan(self, event: Event) -> str:
        lines = [f"{self.dot} {event.message}"]
        hosts: dict[str, Any] = dict(event.data.get("hosts") or {})
        for name, info in hosts.items():
            changes = info.get("changes") or []
            matches = info.get("matches")
            now = "drifted" if matches is None else f"at phase {matches}"
            if not changes:
                lines.append(f"    {name:<12} {now}, nothing to change")
                continue
            lines.append(f"    {name:<12} {now}, {len(changes)} change(s):")
            lines.extend(f"        {change}" for change in changes)
        batches = event.data.get("batches") or []
        if len(batches) > 1:
            lines.append("    batches: " + " | ".join(", ".join(b) for b in batches))
        return "\n".join(lines)


def error_line(exc: RolloutError) -> str:
    """The ``--json`` error line: the error's class, exit code, message and hint, and for an
    error that spans hosts (:class:`~rollout.errors.SpansHosts`) each host's outcome."""
    data: dict[str, object] = {
        "event": "error",
        "ok": False,
        "exit_code": int(exc.exit_code),
        "error": type(exc).__name__,
        "message": exc.message,
        "hint": exc.hint,
    }
    if isinstance(exc, SpansHosts):
        data["results"] = [r.to_json() for r in exc.results]
    return json.dumps(data)


def flags_line(flags: dict[str, Observed], only: Sequence[str] | None = None) -> str:
    names = only if only is not None else sorted(flags)
    return " ".join(f"{name}={format_value(flags.get(name))}" for name in names)


def render_status(report: Any, playbook: Playbook, *, as_json: bool = False) -> str:
    """The status table (or a JSON object) for a
    :class:`rollout.commands.statusreport.StatusReport`.

    A fleet with no recorded phase is expected at the baseline (phase 0). A recorded phase the
    playbook does not have (a shorter or another playbook) is said plainly, never a traceback.
    """
    recorded = report.recorded
    known = recorded is None or 0 <= recorded <= playbook.last
    expected = recorded if recorded is not None else 0
    wave = getattr(report, "wave", None)

    def want(h: Any) -> int:  # a wave's baseline host is expected at the previous phase
        return h.expected if getattr(h, "expected", None) is not None else expected

    if as_json:
        return json.dumps(
            {
                "event": "status",
                "inventory": report.inventory,
                "recorded_phase": recorded,
                "hosts": [
                    {
                        "host": h.host,
                        "matches": h.matches,
                        "error": h.error,
                        "flags": None if h.flags is None else shown_flags(h.flags),
                        "drifted": h.flags is not None and h.matches != want(h),
                        "expected_phase": want(h),
                        "last_change": None if h.record is None else {
                            "run": h.record.run_id, "who": h.record.who,
                            "where": h.record.where, "when": h.record.changed,
                            "phase": h.record.phase, "command": h.record.command,
                            "generation": h.record.generation, "paused": h.record.paused,
                            "reason": h.record.reason,
                        },
                        "ledger_behind": h.behind,
                        "fleet_lease": h.lease,
                        "console": getattr(h, "console", None),
                        "console_fallback": getattr(h, "console_fallback", None),
                    }
                    for h in report.hosts
                ],
                "lock": None
                if report.holder is None
                else {
                    "id": report.holder.id,
                    "who": report.holder.who,
                    "where": report.holder.where,
                    "pid": report.holder.pid,
                    "command": report.holder.command,
                },
                "interrupted_runs": [r.id for r in report.interrupted],
                "open_intents": report.open_intents,
                "wave": None if wave is None else {
                    "phase": wave.phase, "wave": wave.index, "total": wave.total,
                    "canary": list(wave.canary), "from_phase": wave.from_phase,
                    "soak": wave.soak, "verdict": wave.verdict,
                },
            },
            sort_keys=True,
        )
    if recorded is None:
        title = "none yet"
    elif known:
        title = playbook.phase(recorded).title
    else:
        title = f"not in {playbook.path}, which has phases 0..{playbook.last}"
    lines = [
        f"Inventory {report.inventory}: recorded phase {recorded if recorded is not None else '-'}"
        f" ({title})"
    ]
    behind = [h.host for h in report.hosts if h.behind]
    if behind:
        lines.append(
            f"! this ledger is behind the fleet on {len(behind)} host(s) ({', '.join(behind)}): "
            "another controller changed them; `invoke adopt` takes the fleet's record"
        )
    if not known:
        lines.append(
            f"! the ledger records phase {recorded}, which this playbook does not have: use the "
            "playbook that deployed it (--playbook), or bring the fleet into this one with "
            f"`invoke rollback --to {playbook.last} --reason ...`"
        )
    if wave is not None:
        lines.append(
            f"  {wave.title} under way: canary {', '.join(wave.canary)} at phase {wave.phase}; "
            f"the other hosts are its baseline at phase {wave.from_phase}; verdict "
            + (f"{wave.verdict} ({wave.judgement.get('reason', '')})" if wave.verdict
               else f"pending (soak {format_duration(wave.soak)})")
        )  # fmt: skip
        if wave.verdict in ("marginal", "inconclusive", "fleet-wide"):
            lines.append(f"! the next wave waits for a person: `invoke approve --phase "
                         f"{wave.phase}`, or `invoke rollback --to {wave.from_phase}`")  # fmt: skip
    width = max([len(h.host) for h in report.hosts] + [4])
    for h in report.hosts:
        if h.flags is None:
            lines.append(f"  {h.host:<{width}}  UNREACHABLE  {h.error}")
            continue
        state = "drifted" if h.matches is None else f"phase {h.matches}"
        mark = "  " if not known or h.matches == want(h) else "! "
        via = f"  via {h.console}" if getattr(h, "console", None) else ""
        lines.append(f"{mark}{h.host:<{width}}  {state:<11}  {flags_line(h.flags)}{via}")
        if getattr(h, "console_fallback", None):
            lines.append(" " * (width + 4) + "console: rpc, because " + h.console_fallback)
        if h.record is not None:
            late = "  (this ledger is BEHIND: another controller)" if h.behind else ""
            lines.append(" " * (width + 4) + "last change: " + h.record.story() + late)
        if h.lease is not None:
            lines.append(" " * (width + 4) + "fleet lease: " + h.lease)
        if known and h.matches != want(h):
            diffs = playbook.phase(want(h)).state.changes_from(h.flags)
            lines.append(
                " " * (width + 4)
                + "differs from the recorded phase: "
                + "; ".join(
                    f"{c.flag} is {format_value(c.current)}, want {format_value(c.target)}"
                    for c in diffs
                )
            )
    if report.holder is not None:
        holder = report.holder
        lines.append(
            f"Lock held by {holder.who}@{holder.where} pid {holder.pid}: "
            f"{holder.command} (lock {holder.id})"
        )
    for run in report.interrupted:
        lines.append(
            f"! run {run.id} ({run.command}, by {run.who}) was interrupted; "
            "re-run the same command to converge"
        )
    if report.open_intents:
        lines.append(
            f"! {report.open_intents} change(s) were started and never settled "
            "(a crash); the flags above are what the hosts hold now"
        )
    drifted = [h.host for h in report.hosts if h.flags is not None and h.matches != want(h)]
    # every hint is a command that works: phase 0 is reached by a rollback, never a deploy
    converge = (f"invoke deploy --phase {expected}" if expected > 0
                else "invoke rollback --to 0 --reason ...")  # fmt: skip
    if not known:
        pass  # said above
    elif drifted and report.interrupted:
        run = report.interrupted[0]
        lines.append(f"! {len(drifted)} host(s) differ from phase {expected}: finish the "
                     f"interrupted run by re-running `{run.command}`, or go back with "
                     f"`invoke rollback --to {expected} --reason ...`")  # fmt: skip
    elif drifted:
        lines.append(
            f"! {len(drifted)} host(s) differ from phase {expected}: "
            f"re-run `{converge}` to converge them"
        )
    return "\n".join(lines)
