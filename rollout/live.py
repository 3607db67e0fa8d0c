"""The live soak display for terminals: it should read as *waiting*, not as failing.

Built from ``sample`` events only (what the engine emits anyway), with rich. Other events
print above the panel. Without a terminal, or with ``--json``, the reporter prints one line
per poll instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .events import Event, Kind
from .yamlsrc import format_duration


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return "-" if value is None else str(value)


def soak_panel(data: Mapping[str, Any], title: str) -> Group:
    """The panel for one ``sample`` event's data."""
    left = float(data.get("left") or 0.0)
    counted = float(data.get("counted") or 0.0)
    required = float(data.get("required") or 0.0)
    verdict = str(data.get("verdict"))
    header = Text()
    header.append(f"{title}  ", style="bold")
    header.append(f"{format_duration(round(left))} left", style="cyan")
    header.append(
        f"  ({format_duration(round(counted))} of {format_duration(required)} "
        "healthy time counted)",
        style="dim",
    )
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("metric", "worst", "on", "rolls back when", ""):
        table.add_column(column, style="dim" if column == "on" else None)
    for metric in data.get("metrics") or []:
        breached = bool(metric.get("breached"))
        worst = metric.get("worst")
        state = (
            Text("BREACH", style="bold red")
            if breached
            else (Text("no value", style="yellow") if worst is None else Text("ok", style="green"))
        )
        table.add_row(
            str(metric.get("metric")),
            _fmt(worst),
            _fmt(metric.get("host")),
            str(metric.get("threshold")),
            state,
        )
    budget = Text()
    fails = int(data.get("breaches_in_row") or 0)
    limit = int(data.get("failure_limit") or 0)
    gaps = int(data.get("inconclusive_in_row") or 0)
    gap_limit = int(data.get("inconclusive_limit") or 0)
    budget.append("rollback after ", style="dim")
    budget.append(f"{limit - fails} more breaching poll(s)", style="red" if fails else "green")
    budget.append(" or ", style="dim")
    budget.append(
        f"{gap_limit - gaps} more unreadable poll(s)", style="yellow" if gaps else "green"
    )
    hosts = Text("hosts: ", style="dim")
    for name, state in (data.get("hosts") or {}).items():
        style = "green" if state == "ok" else ("yellow" if "drift" in str(state) else "red")
        hosts.append(f"{name} ", style=style)
        if state != "ok":
            hosts.append(f"({state}) ", style="dim")
    wave = Text()
    if data.get("wave") is not None:
        canary, baseline = data.get("canary") or [], data.get("baseline") or []
        wave.append(f"wave {data.get('wave')}: ", style="bold")
        wave.append(f"canary {', '.join(map(str, canary))}", style="cyan")
        wave.append(f" judged against {len(baseline)} baseline host(s) at the previous phase",
                    style="dim")  # fmt: skip
        if data.get("fleet_wide"):
            wave.append("  fleet-wide breach: the baseline breaches too", style="yellow")
    status = Text(
        f"last poll: {verdict}",
        style={"healthy": "green", "breach": "bold red", "inconclusive": "yellow"}.get(verdict, ""),
    )
    return Group(header, wave, table, budget, hosts, status)


class LiveSoak:
    """Turns soak events into a live panel; everything else prints above it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.title = "soak"

    def handles(self, event: Event) -> bool:
        return event.kind in (Kind.SOAK, Kind.SAMPLE)

    def __call__(self, event: Event) -> None:
        if event.kind is Kind.SOAK:
            done = bool(event.data.get("complete") or event.data.get("interrupted"))
            if done:
                self.stop()
                self.console.print(("✓ " if event.ok else "! ") + event.message)
                return
            self.title = event.message.split(":")[0]
            self.console.print(f"• {event.message}")
            return
        if self.live is None:
            self.live = Live(console=self.console, refresh_per_second=4, transient=True)
            self.live.start()
        self.live.update(soak_panel(event.data, self.title))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
