"""The erl_call study, on hosts with real Foundation releases: speed, agreement, failure modes.

A read-back and a health poll are done both ways, through the tool's own console call
(``bin/foundation rpc`` with the rendered template) and through :mod:`bench.erlcall`, each as
a raw SSH fan-out to every host, interleaved, several times. The remote shell times the
console call itself, so the report separates what the console costs from what SSH costs.
Then a list of failure cases is sent to one host through erl_call and judged by
:func:`bench.erlcall.classify`; every one of them must come out as a failure.
"""

from __future__ import annotations

import shlex
import shutil
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from rollout.consolecode import MARKER
from rollout.models import Host, Playbook

from .erlcall import HEALTH_EXPR, READ_EXPR, classify, erl_call_command
from .fanout import destination, ssh_options
from .jobs import Step, StepKind, step_command
from .measure import run

Log = Callable[[str], None]
ELAPSED = "BENCH-ELAPSED-NS "
VARIANTS = ("rpc read", "erl_call read", "rpc health", "erl_call health")


def timed(command: str) -> str:
    """``command`` with the time it took on the host appended to its output."""
    return (
        's=$(date +%s%N)\n'
        f"{command}"
        'rc=$?\ne=$(date +%s%N)\n'
        f'echo "{ELAPSED}$((e - s))"\nexit $rc\n'
    )  # fmt: skip


def release_dir(host: Host) -> str:
    return str(Path(host.release_bin).parent.parent)


def command_for(variant: str, host: Host, playbook: Playbook) -> str:
    if variant == "rpc read":
        return step_command(host, playbook, Step(StepKind.READ), 60)
    if variant == "rpc health":
        return step_command(host, playbook, Step(StepKind.HEALTH), 60)
    expr = READ_EXPR if variant == "erl_call read" else HEALTH_EXPR
    return erl_call_command(release_dir(host), expr)


def write_fanout(path: Path, hosts: Sequence[Host], commands: dict[str, str]) -> Path:
    """A bash fan-out: one ssh per host; stdout, stderr and exit status kept per host."""
    shutil.rmtree(path.parent, ignore_errors=True)
    for sub in ("out", "err", "rc"):
        (path.parent / sub).mkdir(parents=True)
    lines = ["#!/bin/bash", 'cd "$(dirname "$0")"']
    for host in hosts:
        argv = " ".join(shlex.quote(a) for a in ["ssh", *ssh_options(host), destination(host)])
        name = shlex.quote(host.name)
        lines.append(
            f"( {argv} {shlex.quote(commands[host.name])} > out/{name} 2> err/{name}; "
            f"echo $? > rc/{name} ) &"
        )
    lines.append("wait")
    path.write_text("\n".join(lines) + "\n")
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def split_elapsed(text: str) -> tuple[str, float | None]:
    """The output without the elapsed line, and the elapsed seconds.

    erl_call ends its reply without a newline, so the marker may follow it on the same line.
    """
    at = text.rfind(ELAPSED)
    if at < 0:
        return text, None
    try:
        seconds = int(text[at + len(ELAPSED) :].strip()) / 1e9
    except ValueError:
        return text, None
    return text[:at], seconds


def judge(variant: str, rc: int, stdout: str, playbook: Playbook) -> tuple[bool, object]:
    """Whether a reply is a success, and the flags it read (for the agreement check)."""
    if variant.startswith("rpc"):
        lines = [ln for ln in stdout.splitlines() if ln.startswith(MARKER + " ")]
        if rc != 0 or len(lines) != 1:
            return False, None
        import json

        data = json.loads(lines[0][len(MARKER) + 1 :])
        return True, data.get("flags")
    metrics = tuple(t.metric for t in playbook.health.thresholds)
    reply = classify(
        rc, stdout, allow=playbook.flags, metrics=metrics, health=variant.endswith("health")
    )
    return reply.ok, dict(reply.flags) if reply.ok else reply.why


def study(
    hosts: Sequence[Host], playbook: Playbook, work: Path, reps: int, log: Log
) -> dict[str, object]:
    """Interleaved fan-outs of every variant; then the failure cases on the first host."""
    wall: dict[str, list[float]] = {v: [] for v in VARIANTS}
    remote: dict[str, list[float]] = {v: [] for v in VARIANTS}
    failed: dict[str, int] = {v: 0 for v in VARIANTS}
    disagreements = 0
    scripts = {
        v: write_fanout(
            work / "erl" / v.replace(" ", "-") / "run.sh",
            hosts,
            {h.name: timed(command_for(v, h, playbook)) for h in hosts},
        )
        for v in VARIANTS
    }
    for rep in range(reps):
        order = VARIANTS[rep % len(VARIANTS) :] + VARIANTS[: rep % len(VARIANTS)]
        reads: dict[str, dict[str, object]] = {}
        for variant in order:
            script = scripts[variant]
            for sub in ("out", "err", "rc"):
                for f in (script.parent / sub).iterdir():
                    f.unlink()
            wall[variant].append(run(["bash", str(script)], deadline=120).seconds)
            for host in hosts:
                stdout, seconds = split_elapsed(_read(script.parent / "out" / host.name))
                rc = int(_read(script.parent / "rc" / host.name).strip() or "255")
                ok, flags = judge(variant, rc, stdout, playbook)
                if seconds is not None:
                    remote[variant].append(seconds)
                if not ok:
                    failed[variant] += 1
                    log(f"erl study: {variant} failed on {host.name}: {flags}")
                elif variant.endswith("read"):
                    reads.setdefault(host.name, {})[variant] = flags
        for per_host in reads.values():
            if len(set(map(repr, per_host.values()))) > 1:
                disagreements += 1
        log(f"erl study rep {rep + 1}/{reps}: " + ", ".join(
            f"{v} {wall[v][-1]:.3f}s" for v in VARIANTS))  # fmt: skip
    return {
        "n": len(hosts),
        "reps": reps,
        "fanout_seconds": wall,
        "remote_call_seconds": remote,
        "failed_calls": failed,
        "read_disagreements": disagreements,
        "medians": {
            v: {
                "fanout": statistics.median(wall[v]),
                "remote_call": statistics.median(remote[v]) if remote[v] else None,
            }
            for v in VARIANTS
        },
        "cases": failure_cases(hosts[0], playbook, work / "erl" / "cases"),
    }


#: (case, erl_call expression, erl_call's timeout, node, extra erl_call options)
CASES: tuple[tuple[str, str, int, str, tuple[str, ...]], ...] = (
    ("healthy read (control)", READ_EXPR, 10, "-", ()),
    ("wrong cookie", READ_EXPR, 10, "-", ("-c", "WRONGCOOKIE")),
    ("node down (no such node)", READ_EXPR, 10, "foundation_h99@127.0.0.1", ()),
    ("undefined function", "nosuch_module:call().", 10, "-", ()),
    ("expression raises", "erlang:error(boom).", 10, "-", ()),
    ("syntax error", "{ok, .", 10, "-", ()),
    ("flag table missing", READ_EXPR.replace("foundation_feature_flags", "no_table"), 10, "-", ()),
    ("reply holds a pid", "self().", 10, "-", ()),
    ("flag value is a binary", "{rollout_flags, node(), [{use_sync_test_apis, <<\"on\">>}]}.",
     10, "-", ()),
    ("call outlives erl_call's timeout", "timer:sleep(5000).", 3, "-", ()),
)  # fmt: skip


def failure_cases(host: Host, playbook: Playbook, work: Path) -> list[dict[str, object]]:
    """Send each case to ``host`` through erl_call; record the exit, the output and the verdict."""
    out = []
    for name, expr, timeout, node, extra in CASES:
        command = erl_call_command(release_dir(host), expr, timeout, node=node, extra=extra)
        script = write_fanout(work / "run.sh", [host], {host.name: command})
        run(["bash", str(script)], deadline=60)
        stdout = _read(script.parent / "out" / host.name)
        stderr = _read(script.parent / "err" / host.name)
        rc = int(_read(script.parent / "rc" / host.name).strip() or "255")
        reply = classify(rc, stdout, allow=playbook.flags)
        out.append(
            {
                "case": name,
                "exit": rc,
                "output": (stdout.strip() or stderr.strip())[:160],
                "ok": reply.ok,
                "verdict": "success" if reply.ok else f"failure: {reply.why}"[:160],
            }
        )
    return out
