"""Waves as evidence: the judgement table, JSON lines, JUnit test cases, Prometheus textfile.

Every renderer takes :class:`~rollout.ledger.WaveRecord` values (what the ledger holds: the
wave's hosts, verdict and the judgement's evidence) and returns text; callers write it. The
Prometheus text is written by :func:`write_textfile` atomically (a temporary file in the same
directory, then a rename), because node_exporter's textfile collector may read at any moment.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .ledger import EventRecord, Ledger, RunRecord, WaveRecord

__all__ = [
    "history_lines", "prometheus_text", "wave_json", "wave_lines", "waves_by_run", "waves_junit",
    "waves_of_run", "write_junit", "write_textfile",
]  # fmt: skip

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def waves_by_run(ledger: Ledger, inventory: str) -> dict[str, list[WaveRecord]]:
    """The inventory's waves, by the run that applied them (for ``history``)."""
    out: dict[str, list[WaveRecord]] = {}
    for wave in ledger.waves(inventory):
        out.setdefault(wave.run_id, []).append(wave)
    return out


def write_junit(path: str | Path, waves: Sequence[WaveRecord]) -> None:
    """``report --junit``: the waves' judgements as JUnit XML at ``path``."""
    Path(path).write_text(waves_junit(waves), encoding="utf-8")


def waves_of_run(ledger: Ledger, run: RunRecord, events: Sequence[EventRecord]) -> list[WaveRecord]:
    """The waves a run applied, and those whose soak it sampled or judged."""
    ids = {w.id for w in ledger.run_waves(run.id)}
    for event in events:
        inner = event.data.get("data")
        if isinstance(inner, dict) and isinstance(inner.get("wave_id"), int):
            ids.add(int(inner["wave_id"]))
    if not ids:
        return []
    return [w for w in ledger.waves(run.inventory) if w.id in ids]


def _num(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value:.3g}"


def _metrics(wave: WaveRecord) -> list[Mapping[str, Any]]:
    items = wave.judgement.get("metrics")
    return [m for m in items if isinstance(m, dict)] if isinstance(items, list) else []


def wave_lines(waves: Sequence[WaveRecord]) -> list[str]:
    """The judgement table of each wave, one row per compared metric (``report --run``)."""
    if not waves:
        return []
    lines = ["Waves (canary against baseline; Mann-Whitney U, shift = Hodges-Lehmann):"]
    for wave in waves:
        verdict = wave.verdict or "pending"
        score = wave.judgement.get("score")
        scored = f", score {score:.0f}" if isinstance(score, (int, float)) else ""
        lines.append(f"  {wave.title}: {verdict}{scored}; canary {', '.join(wave.canary)}")
        reason = wave.judgement.get("reason")
        if reason:
            lines.append(f"    {reason}")
        metrics = _metrics(wave)
        if not metrics:
            continue
        head = ("metric", "outcome", "n canary", "n base", "median c", "median b", "shift",
                "allowed", "p")  # fmt: skip
        rows = [head] + [
            (str(m.get("metric")), str(m.get("outcome")), str(m.get("canary_count", "-")),
             str(m.get("baseline_count", "-")), _num(m.get("canary_median")),
             _num(m.get("baseline_median")), _num(m.get("shift")), _num(m.get("allowed")),
             _num(m.get("p_value")))
            for m in metrics
        ]  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        for row in rows:
            lines.append("    " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        for m in metrics:
            if m.get("reason"):
                lines.append(f"    {m.get('metric')}: {m.get('reason')}")
    return lines


def wave_json(wave: WaveRecord) -> dict[str, Any]:
    """One ``report.wave`` JSON line's object."""
    return {
        "event": "report.wave", "id": wave.id, "run": wave.run_id, "phase": wave.phase,
        "from_phase": wave.from_phase, "wave": wave.index, "total": wave.total,
        "hosts": list(wave.hosts), "canary": list(wave.canary), "soak": wave.soak,
        "started": wave.started, "finished": wave.finished, "verdict": wave.verdict,
        "judgement": wave.judgement,
    }  # fmt: skip


def history_lines(waves: Iterable[WaveRecord]) -> list[str]:
    """Indented lines under a run in ``history``: the waves it applied and their verdicts."""
    return [f"    {w.title}: {', '.join(w.hosts)} -> {w.verdict or 'soaking'}" for w in waves]


def waves_junit(waves: Sequence[WaveRecord], *, name: str = "waves") -> str:
    """One ``<testsuite>`` per wave, one ``<testcase>`` per judged metric: a ``<failure>`` for
    a fail, ``<skipped>`` for inconclusive or fleet-wide (judged neither way)."""
    cases = [(w, m) for w in waves for m in _metrics(w)]
    failed = sum(1 for _, m in cases if m.get("outcome") == "fail")
    root = ET.Element("testsuites", name=name, tests=str(len(cases)), failures=str(failed),
                      errors="0")  # fmt: skip
    for wave in waves:
        metrics = _metrics(wave)
        suite = ET.SubElement(
            root, "testsuite", name=_xml(wave.title), tests=str(len(metrics)),
            failures=str(sum(1 for m in metrics if m.get("outcome") == "fail")), errors="0",
            skipped=str(sum(1 for m in metrics if m.get("outcome") not in ("pass", "fail"))),
        )  # fmt: skip
        for m in metrics:
            case = ET.SubElement(suite, "testcase", classname=f"{name}.phase{wave.phase}",
                                 name=_xml(f"{wave.title}: {m.get('metric')}"))  # fmt: skip
            reason = _xml(str(m.get("reason") or ""))
            detail = _xml(
                f"canary n={m.get('canary_count')} median={_num(m.get('canary_median'))}; "
                f"baseline n={m.get('baseline_count')} median={_num(m.get('baseline_median'))}; "
                f"shift={_num(m.get('shift'))} allowed={_num(m.get('allowed'))} "
                f"p={_num(m.get('p_value'))}; wave verdict {wave.verdict}"
            )
            if m.get("outcome") == "fail":
                ET.SubElement(case, "failure", message=reason, type="CanaryWorse").text = detail
            elif m.get("outcome") != "pass":
                ET.SubElement(case, "skipped", message=f"{m.get('outcome')}: {reason}")
            ET.SubElement(case, "system-out").text = detail
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _xml(text: str) -> str:
    return _NOT_XML.sub("?", text)


# -- Prometheus text format ------------------------------------------------------------------


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus_text(inventory: str, phase: int, data: Mapping[str, Any]) -> str:
    """One soak round (a ``sample`` event's data) in the Prometheus text exposition format:
    each host's metric values, the wave's side of each host, and the soak's time."""
    raw = data.get("values")
    values: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    canary = set(data.get("canary") or ())
    wave = data.get("wave")
    base = f'inventory="{_label(inventory)}",phase="{phase}"'
    lines = [
        "# HELP rollout_soak_metric A host's health metric at the latest soak round.",
        "# TYPE rollout_soak_metric gauge",
    ]
    for host, metrics in sorted(values.items()):
        if not isinstance(metrics, dict):
            continue
        side = "" if wave is None else f',side="{"canary" if host in canary else "baseline"}"'
        for metric, value in sorted(metrics.items()):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            lines.append(f'rollout_soak_metric{{{base},host="{_label(str(host))}",'
                         f'metric="{_label(str(metric))}"{side}}} {float(value)!r}')  # fmt: skip
    healthy = 1 if data.get("verdict") == "healthy" else 0
    lines += [
        "# HELP rollout_soak_healthy 1 when the latest soak round was healthy.",
        "# TYPE rollout_soak_healthy gauge",
        f"rollout_soak_healthy{{{base}}} {healthy}",
        "# HELP rollout_soak_counted_seconds Healthy soak time counted for the phase (or wave).",
        "# TYPE rollout_soak_counted_seconds gauge",
        f"rollout_soak_counted_seconds{{{base}}} {float(data.get('counted') or 0.0)!r}",
        "# HELP rollout_soak_required_seconds Soak time the phase (or wave) requires.",
        "# TYPE rollout_soak_required_seconds gauge",
        f"rollout_soak_required_seconds{{{base}}} {float(data.get('required') or 0.0)!r}",
    ]
    if wave is not None:
        lines += [
            "# HELP rollout_wave The wave of the phase being soaked.",
            "# TYPE rollout_wave gauge",
            f"rollout_wave{{{base}}} {int(wave)}",
        ]
    return "\n".join(lines) + "\n"


def write_textfile(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a reader sees the old file or the new, whole."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
