"""Results (as saved in JSON) to Markdown tables: pure functions that return strings."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Data = Mapping[str, Any]
FLOOR = "ssh"
TOOL = "rollout"
FIXED = "rollout+known_hosts"
#: Issue 14: a 50-host deploy with read-back within this factor of the raw OpenSSH floor.
BOUND = 1.15


def _med(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _group(records: Iterable[Data], part: str) -> dict[tuple[int, str, str], list[Data]]:
    out: dict[tuple[int, str, str], list[Data]] = defaultdict(list)
    for r in records:
        if r["part"] == part and r["rep"] >= 0:
            out[(r["n"], r["job"], r["contender"])].append(r)
    return out


def paired_ratios(runs: Sequence[Data], floor: Sequence[Data]) -> list[float]:
    """Contender / floor for each repetition both ran."""
    by_rep = {r["rep"]: r["seconds"] for r in floor}
    return [r["seconds"] / by_rep[r["rep"]] for r in runs if r["rep"] in by_rep]


def timing_table(data: Data, part: str) -> str:
    groups = _group(data["records"], part)
    order = {TOOL: 0, FLOOR: 2, "ansible": 3}
    jobs = list(data["jobs"])
    rows = []

    def rank(key: tuple[int, str, str]) -> tuple[int, int, int, str]:
        return (key[0], jobs.index(key[1]), order.get(key[2], 1), key[2])

    for key in sorted(groups, key=rank):
        n, job, contender = key
        runs = groups[key]
        secs = [r["seconds"] for r in runs]
        floor = groups.get((n, job, FLOOR), [])
        ratio = _med(secs) / _med(r["seconds"] for r in floor) if floor else float("nan")
        paired = paired_ratios(runs, floor)
        rss = [r["max_rss_kib"] for r in runs if r["max_rss_kib"]]
        rows.append(
            (
                str(n),
                job,
                contender,
                f"{_med(secs):.3f}",
                f"{min(secs):.3f}",
                f"{max(secs):.3f}",
                f"{ratio:.2f}",
                f"{_med(paired):.2f}" if paired else "-",
                f"{_med(r['cpu_seconds'] for r in runs):.2f}",
                f"{_med(rss) / 1024:.0f}" if rss else "-",
                str(len(runs)),
            )
        )
    head = ("N", "job", "who", "median s", "min s", "max s", "x floor (medians)",
            "x floor (paired)", "client CPU s", "largest process MiB", "runs")  # fmt: skip
    return _table(head, rows)


def memory_table(data: Data) -> str:
    rows = []
    for r in sorted(data["records"], key=lambda r: (r["n"], r["contender"])):
        if r["rep"] == -1 and r["tree_rss_kib"] is not None:
            rows.append(
                (
                    str(r["n"]),
                    r["contender"],
                    f"{r['tree_rss_kib'] / 1024:.0f}",
                    f"{(r['max_rss_kib'] or 0) / 1024:.0f}",
                    f"{r['seconds']:.2f}",
                )
            )
    head = ("N", "who", "peak RSS of the whole process tree MiB", "largest process MiB", "s")
    return _table(head, rows)


def cli_table(data: Data) -> str:
    rows = [
        (name, f"{_med(v):.3f}", f"{min(v):.3f}", f"{max(v):.3f}", str(len(v)))
        for name, v in data["cli"].items()
    ]
    return _table(("command", "median s", "min s", "max s", "runs"), rows)


def _median_of(data: Data, part: str, n: int, job: str, who: str) -> float | None:
    secs = [
        r["seconds"]
        for r in data["records"]
        if r["part"] == part and r["n"] == n and r["job"] == job and r["contender"] == who
        and r["rep"] >= 0
    ]  # fmt: skip
    return _med(secs) if secs else None


def targets_table(data: Data) -> str:
    rows = []
    sizes = sorted({r["n"] for r in data["records"] if r["part"] == "stub"})
    n50 = 50 if 50 in sizes else (sizes[len(sizes) // 2] if sizes else None)
    if n50 is not None:
        tool = _median_of(data, "stub", n50, "deploy", TOOL)
        floor = _median_of(data, "stub", n50, "deploy", FLOOR)
        if tool and floor:
            ratio = tool / floor
            rows.append((f"deploy with read-back, N={n50}: within {BOUND}x of the raw OpenSSH "
                         "floor", f"{ratio:.2f}x ({tool:.2f} s vs {floor:.2f} s)",
                         "met" if ratio <= BOUND else "NOT met"))  # fmt: skip
            fixed = _median_of(data, "stub", n50, "deploy", FIXED)
            if fixed:
                rows.append((f"(same, with the proposed known_hosts fix: {FIXED})",
                             f"{fixed / floor:.2f}x ({fixed:.2f} s vs {floor:.2f} s)",
                             "met" if fixed / floor <= BOUND else "NOT met"))  # fmt: skip
        for job in data["jobs"]:
            tool = _median_of(data, "stub", n50, job, TOOL)
            ans = _median_of(data, "stub", n50, job, "ansible")
            if tool and ans:
                rows.append((f"{job}, N={n50}: at least 5x faster than ansible-playbook",
                             f"{ans / tool:.1f}x ({tool:.2f} s vs {ans:.2f} s)",
                             "met" if ans / tool >= 5 else "NOT met"))  # fmt: skip
    big = max(sizes) if sizes else None
    if big is not None:
        rows += _big_rows(data, big)
    listing = data["cli"].get("invoke --list")
    if listing:
        rows.append(("`invoke --list` under 0.5 s", f"{_med(listing):.3f} s (median)",
                     "met" if _med(listing) < 0.5 else "NOT met"))  # fmt: skip
    return _table(("target", "measured", "verdict"), rows)


def _big_rows(data: Data, big: int) -> list[tuple[str, str, str]]:
    """The largest lab's targets: controller memory (250 MiB at N >= 250, else 150 MB) and,
    from N=250 on, a deploy ratio no worse than at N=100."""
    rows = []
    tree = [r["tree_rss_kib"] for r in data["records"] if r["rep"] == -1 and r["n"] == big
            and r["contender"] == TOOL and r["tree_rss_kib"]]  # fmt: skip
    largest = [r["max_rss_kib"] for r in data["records"] if r["part"] == "stub" and
               r["n"] == big and r["contender"] == TOOL and r["max_rss_kib"]]  # fmt: skip
    if tree or largest:
        mib = max(tree or [0]) / 1024
        most = max(largest or [0]) / 1024
        shown = f"{max(mib, most):.0f} MiB peak RSS (tree sampled {mib:.0f}, getrusage {most:.0f})"
        if big >= 250:
            rows.append((f"controller memory at N={big}: under 250 MiB", shown,
                         "met" if max(mib, most) < 250 else "NOT met"))  # fmt: skip
        else:
            rows.append((f"controller memory at N={big}: under 150 MB", shown,
                         "met" if max(mib, most) * 1.048576 < 150 else "NOT met"))  # fmt: skip
    if big >= 250:
        ratios = {}
        for n in (100, big):
            tool = _median_of(data, "stub", n, "deploy", TOOL)
            floor = _median_of(data, "stub", n, "deploy", FLOOR)
            if tool and floor:
                ratios[n] = tool / floor
        if len(ratios) == 2:
            rows.append((f"deploy, N={big}: x floor no worse than at N=100",
                         f"{ratios[big]:.2f}x vs {ratios[100]:.2f}x",
                         "met" if ratios[big] <= ratios[100] else "NOT met"))  # fmt: skip
    return rows


def profile_table(data: Data) -> str:
    prof = data.get("profile") or {}
    if not prof:
        return "(not run)"
    total: dict[str, int] = defaultdict(int)
    for c in prof["counts"]:
        total[c["role"]] += c["samples"]
    rows = []
    wall = prof["wall_seconds"]
    for c in prof["counts"]:
        busy = c["samples"] / prof["samples"]  # threads of this kind there, on average
        if busy >= 0.01:
            rows.append((c["role"], c["category"], f"{busy * wall:.2f}", f"{busy:.2f}"))
    head = ("threads", "where", "thread-seconds", "threads there on average")
    note = (
        f"One sampled `invoke deploy` at N={prof.get('n')}: {wall:.2f} s wall, "
        f"{prof['samples']} samples every {prof['interval'] * 1000:.0f} ms. For the main "
        "thread the last column is the share of the wall time; the pool and paramiko's "
        "transports have a thread per host, so theirs counts threads.\n\n"
    )
    return note + _table(head, rows)


def ledger_table(data: Data) -> str:
    ab = data.get("ledger_ab") or {}
    if not ab.get("disk"):
        return "(not run)"
    n = int(ab.get("n", [0])[0])
    rows = [
        (f"deploy N={n}, ledger on {where}", f"{_med(ab[where]):.3f}",
         f"{min(ab[where]):.3f}", f"{max(ab[where]):.3f}")
        for where in ("disk", "tmpfs", "postgresql") if ab.get(where)
    ]  # fmt: skip
    table = _table(("run", "median s", "min s", "max s"), rows)
    if ab.get("postgresql"):
        ratio = _med(ab["postgresql"]) / _med(ab["disk"])
        table += f"\nPostgreSQL / SQLite-on-disk (medians): {ratio:.2f}x\n"
    return table


def erl_tables(data: Data) -> str:
    erl = data.get("erl") or {}
    if not erl:
        return "(not run)"
    med = erl["medians"]

    def cells(a: float | None, b: float | None, ratio: str) -> list[str]:
        if a is None or b is None:
            return ["-", "-", "-"]
        return [f"{a:.3f}", f"{b:.3f}", ratio.format(a / b)]

    rows = []
    for kind in ("read", "health"):
        rpc, ec = med[f"rpc {kind}"], med[f"erl_call {kind}"]
        rows.append(
            (
                kind,
                *cells(rpc["remote_call"], ec["remote_call"], "{:.0f}x"),
                *cells(rpc["fanout"], ec["fanout"], "{:.1f}x"),
            )
        )
    head = ("console call", "rpc: one call s", "erl_call: one call s", "ratio",
            f"rpc: fan-out to {erl['n']} hosts s", "erl_call: fan-out s", "ratio")  # fmt: skip
    speed = _table(head, rows)
    cases = _table(
        ("case", "exit", "output (start)", "verdict"),
        (
            (c["case"], str(c["exit"]),
             "`" + " ".join(c["output"].split()).replace("|", "\\|")[:90] + "`",
             c["verdict"])
            for c in erl["cases"]
        ),
    )  # fmt: skip
    tail = (
        f"\n\n{erl['reps']} interleaved rounds; calls that failed: {erl['failed_calls']}; "
        f"hosts where the two reads disagreed: {erl['read_disagreements']}.\n\n"
    )
    return speed + tail + cases


def render(data: Data) -> str:
    """The whole report."""
    m = data["machine"]
    parts = [
        f"Run {data['started']}, {data['seconds'] / 60:.1f} min: `{data['command']}`  ",
        f"Machine: {m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}, "
        f"{m['openssh']}, ansible-core {m['ansible_core']}.",
        "",
        "Jobs: " + "; ".join(f"**{k}** = {v}" for k, v in data["jobs"].items()) + ".",
        "",
        "### Targets",
        targets_table(data),
        "",
        "### SSH-only hosts (the console is a trivial stub)",
        timing_table(data, "stub"),
        "",
        "### Controller memory (deploy, one sampled run each)",
        memory_table(data),
        "",
        "### CLI start-up",
        cli_table(data),
        "",
        "### Where one tool deploy spends its time",
        profile_table(data),
        "",
        "### Ledger: SQLite on disk, on tmpfs, PostgreSQL",
        ledger_table(data),
    ]
    if any(r["part"] == "release" for r in data["records"]):
        parts += ["", "### Real Foundation releases", timing_table(data, "release")]
    parts += ["", "### erl_call vs `bin/foundation rpc` (real releases)", erl_tables(data)]
    return "\n".join(parts) + "\n"
