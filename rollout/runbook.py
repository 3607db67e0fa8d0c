"""RUNBOOK.md, rendered from the playbook and ``templates/runbook.md.j2``."""

from __future__ import annotations

from typing import Any

from .consolecode import render
from .errors import ExitCode
from .models import Direction, Playbook, Risk, format_value
from .yamlsrc import format_duration

EXIT_CODES: tuple[tuple[ExitCode, str, str], ...] = (
    (ExitCode.OK, "success, or nothing to do", "-"),
    (ExitCode.UNEXPECTED, "unexpected error (a bug)", "read the message; `invoke status`"),
    (ExitCode.BAD_INPUT, "bad playbook, inventory or option; nothing was touched",
     "fix the file and line named"),
    (ExitCode.BUSY, "another run holds the inventory's lock",
     "wait; if it is dead: `invoke unlock ID`"),
    (ExitCode.ROLLED_BACK, "a breach or failure rolled the fleet back; verified",
     "investigate; `invoke report --run ID`"),
    (ExitCode.UNREACHABLE, "some hosts could not be reached or read",
     "bring them back, re-run the same command"),
    (ExitCode.ROLLBACK_INCOMPLETE, "a rollback did not verify on every host",
     "re-run the rollback; `invoke status`"),
    (ExitCode.DEPLOY_FAILED, "a change failed; changed hosts were put back",
     "fix the cause, re-run the deploy"),
    (ExitCode.REFUSED, "a confirmation, gate or --force is missing", "read the hint"),
    (ExitCode.INTERRUPTED, "interrupted by SIGINT/SIGTERM after settling the step",
     "re-run, or `invoke monitor` to resume a soak"),
)  # fmt: skip


def context(playbook: Playbook) -> dict[str, Any]:
    def thresholds(policy: Any) -> list[dict[str, Any]]:
        return [
            {"metric": t.metric, "op": ">" if t.direction is Direction.MAX else "<",
             "limit": f"{t.limit:g}", "unit": t.unit}
            for t in policy.thresholds
        ]  # fmt: skip

    phases = []
    for phase in playbook.phases:
        override = ""
        if phase.health is not None:
            changed = [
                t.describe() for t in phase.health.thresholds if t not in playbook.health.thresholds
            ]
            if changed:
                override = "; ".join(changed)
        gates = [
            name
            for name, on in (
                ("a fresh backup", phase.gates.backup),
                ("readiness checks pass", phase.gates.checks),
                ("a recorded approval", phase.gates.approval),
            )
            if on
        ]
        waves = [(f"{w.hosts}" if isinstance(w.hosts, str) else f"{w.hosts} host(s)",
                  format_duration(w.soak)) for w in phase.waves]  # fmt: skip
        phases.append({
            "waves": waves,
            "number": phase.number, "name": phase.name, "risk": phase.risk.value,
            "high": phase.risk is Risk.HIGH, "validation": phase.validation,
            "state": [(flag, format_value(value)) for flag, value in phase.state],
            "soak": format_duration(phase.soak), "health_override": override,
            "gates": ", ".join(gates),
            "previous": playbook.phase(phase.number - 1).title,
        })  # fmt: skip
    emergency = playbook.phase(playbook.emergency.phase)
    return {
        "rollout_name": playbook.name,
        "description": playbook.description.strip(),
        "playbook_path": _relative(playbook.path),
        "exit_codes": [(int(code), meaning, action) for code, meaning, action in EXIT_CODES],
        "check_count": len(playbook.checks.checks),
        "check_categories": list(dict.fromkeys(
            c.category.value.replace("_", " ") for c in playbook.checks.checks)),
        "backup_phases": [p.number for p in playbook.phases if p.gates.backup],
        "health": {"interval": format_duration(playbook.health.interval),
                   "failure_limit": playbook.health.failure_limit,
                   "inconclusive_limit": playbook.health.inconclusive_limit,
                   "thresholds": thresholds(playbook.health)},
        "comparisons": [
            {"metric": c.metric, "worse": "higher" if c.direction is Direction.MAX else "lower",
             "allowed": f"{c.allowed:g}{'%' if c.percent else ''}",
             "confidence": f"{c.confidence:.0%}", "min_samples": c.min_samples,
             "weight": f"{c.weight:g}", "critical": c.critical}
            for c in playbook.health.comparisons
        ],
        "scoring": {"pass": f"{playbook.scoring.pass_score:g}",
                    "marginal": f"{playbook.scoring.marginal_score:g}"},
        "source": {"console": "each host's remote console "
                   "(Foundation.Deployment.Monitor.get_deployment_health/0)",
                   "command": "a metrics command on each host",
                   "prometheus": "Prometheus"}[playbook.source.kind.value],
        "phases": phases,
        "emergency_phase": emergency.number,
        "emergency_title": emergency.title,
        "emergency_restart": playbook.emergency.restart,
    }  # fmt: skip


def _relative(path: str) -> str:
    from pathlib import Path

    from .resources import CHECKOUT

    p = Path(path).resolve()
    return str(p.relative_to(CHECKOUT)) if p.is_relative_to(CHECKOUT) else str(p)


def render_runbook(playbook: Playbook) -> str:
    """The whole RUNBOOK.md text for ``playbook``."""
    text = render("runbook.md.j2", **context(playbook))
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"
