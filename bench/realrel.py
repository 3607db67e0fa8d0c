"""Real Foundation releases (issue 14): the tool on its erl_call path against every floor.

``python -m bench.realrel --sizes 5,10 --reps 3`` brings up a lab of N real releases per size
and times, in paired, rotating rounds (as the suite does), deploy with read-back, emergency
rollback and status for:

* ``rollout``: the tool as shipped (``rollout_console: auto``: erl_call on these hosts);
* ``rollout(rpc)``: the same tool forced onto ``bin/foundation rpc`` (``ROLLOUT_CONSOLE``);
* ``ssh``: the raw OpenSSH fan-out running the tool's rpc console calls (the suite's floor);
* ``ssh+erl_call``: the raw fan-out running the tool's erl_call console calls (the physical
  floor of this job: one ssh and one erl_call per step and host);
* ``ansible``: ansible-playbook (raw module, ControlPersist, pipelining, forks = N) with rpc.

Then one soak poll on one host, on one open SSH session (as ``monitor`` and a deploy's soak
hold them), through each path: the wall time of a poll, and the host's CPU for it, read from
``/proc``: the session's sshd process's own and reaped children's CPU (every process the
poll's exec starts is its descendant) plus the node's CPU, minus the node's CPU over an idle
stretch of the same length, over K polls. Results go to ``bench/results/realrel-<time>.json``
and the Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rollout.console import RemoteConsole
from rollout.erlcall import ConsolePaths
from rollout.inventory import load_inventory
from rollout.models import ConsoleMode
from rollout.playbook import load_playbook
from rollout.transport.ssh import SSHTransport
from rollout_lab import control
from rollout_lab.model import Lab
from tests.fault import faults

from . import ansible
from .contenders import Ansible, Fanout, Tool
from .jobs import make_jobs
from .suite import PLAYBOOK, Contender, Record, ReleaseFleet, ledger_templates, measure_lab

RESULTS = Path(__file__).resolve().parent / "results"
TICK = os.sysconf("SC_CLK_TCK")


class ErlReleaseFleet(ReleaseFleet):
    """A real-release fleet whose between-run resets go through the erl_call floor (fast)."""

    def __init__(self, hosts: Sequence[object], playbook: object, work: Path) -> None:
        super().__init__(hosts, playbook, work)  # type: ignore[arg-type]
        resets = list(self.resets.values())
        self.fanout = Fanout(self.fanout.hosts, playbook, resets, work / "reset-erl",  # type: ignore[arg-type]
                             console="erl_call")  # fmt: skip


def _cpu_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of ``pid`` (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15])


def _session_sshd(lab_host: object, before: set[int]) -> int:
    """The sshd process of the session opened since ``before`` (its exec children's parent)."""
    new = [p for p in faults.sshd_processes(lab_host) if p not in before]  # type: ignore[arg-type]
    if not new:
        raise SystemExit("could not find the session's sshd process")
    return max(new)  # the unprivileged child comes after its privileged monitor


def poll_cost(lab: Lab, mode: ConsoleMode, polls: int) -> dict[str, float]:
    """Wall seconds and host CPU seconds of one health poll through ``mode``, on one session."""
    playbook = load_playbook(PLAYBOOK)
    lab_host = lab.hosts[0]
    host = next(h for h in load_inventory(lab.inventory).hosts if h.name == lab_host.name)
    metrics = tuple(t.metric for t in playbook.health.thresholds)
    before = set(faults.sshd_processes(lab_host))
    session = SSHTransport().connect(host)
    try:
        con = RemoteConsole(session, allow=playbook.flags, metrics=metrics, timeout=30,
                            paths=ConsolePaths(mode))  # fmt: skip
        con.health()  # the path chosen, caches warm
        pids = set(faults.sshd_processes(lab_host)) - before
        node = control.node_pid(lab_host)
        assert node is not None
        sshd = _session_sshd(lab_host, before)
        tree0, node0, t0 = _cpu_ticks(sshd), _cpu_ticks(node), time.monotonic()
        walls = []
        for _ in range(polls):
            start = time.monotonic()
            reading = con.health()
            walls.append(time.monotonic() - start)
            assert reading.reading.console == mode.value
        tree1, node1, t1 = _cpu_ticks(sshd), _cpu_ticks(node), time.monotonic()
        time.sleep(t1 - t0)  # the node's own CPU while idle, over as long
        idle = _cpu_ticks(node) - node1
    finally:
        session.close()
    busy = (tree1 - tree0) + max(0, (node1 - node0) - idle)
    return {
        "polls": polls,
        "sessions": len(pids),
        "wall_median": statistics.median(walls),
        "host_cpu_per_poll": busy / TICK / polls,
        "exec_tree_cpu_per_poll": (tree1 - tree0) / TICK / polls,
        "node_cpu_per_poll": max(0, (node1 - node0) - idle) / TICK / polls,
    }


def measure_size(
    n: int, reps: int, with_ansible: bool, work: Path, log: object
) -> dict[str, object]:
    from rollout_lab.testing import free_base_port, running_lab

    say = log  # type: ignore[assignment]
    playbook = load_playbook(PLAYBOOK)
    jobs = tuple(make_jobs(emergency=True))
    ansible_bin = ansible.ensure(say) if with_ansible else None  # type: ignore[arg-type]
    out: dict[str, object] = {"n": n}
    with running_lab(n, with_release=True, base_port=free_base_port(n)) as lab:
        hosts = load_inventory(lab.inventory).hosts
        fleet = ErlReleaseFleet(hosts, playbook, work)
        ledgers = ledger_templates(fleet, lab.inventory, work)
        contenders: list[Contender] = [
            Tool(lab.inventory, ledgers),
            Tool(lab.inventory, ledgers, console="rpc"),
            Fanout(hosts, playbook, jobs, work),
            Fanout(hosts, playbook, jobs, work, console="erl_call"),
        ]
        if ansible_bin is not None:
            contenders.append(Ansible(ansible_bin, lab.inventory, hosts, playbook, jobs, work))
        records: list[Record] = measure_lab(
            "release", n, reps, contenders, jobs, fleet, work, say, memory=False,  # type: ignore[arg-type]
        )  # fmt: skip
        out["records"] = [r.__dict__ for r in records]
        out["poll"] = {
            "erl_call": poll_cost(lab, ConsoleMode.ERL_CALL, 60),
            "rpc": poll_cost(lab, ConsoleMode.RPC, 8),
        }
        say(f"poll N={n}: {json.dumps(out['poll'])}")  # type: ignore[operator]
    return out


def table(results: Sequence[dict[str, object]]) -> str:
    lines = ["| N | job | " + " | ".join(CONTENDERS) + " |",
             "|---|---|" + "---|" * len(CONTENDERS)]  # fmt: skip
    ratios = ["", "| N | job | rollout / ssh+erl_call | ssh+rpc / rollout | ansible / rollout | "
              "rollout(rpc) / rollout |", "|---|---|---|---|---|---|"]  # fmt: skip
    for size in results:
        recs = [r for r in size["records"] if r["rep"] >= 0]  # type: ignore[attr-defined, index]
        for job in ("deploy", "rollback", "status"):
            med = {}
            for c in CONTENDERS:
                xs = [r["seconds"] for r in recs if r["job"] == job and r["contender"] == c]
                med[c] = statistics.median(xs) if xs else float("nan")
            lines.append(f"| {size['n']} | {job} | "
                         + " | ".join(f"{med[c]:.3f}" for c in CONTENDERS) + " |")  # fmt: skip
            ratios.append(
                f"| {size['n']} | {job} | {med['rollout'] / med['ssh+erl_call']:.2f}x | "
                f"{med['ssh'] / med['rollout']:.2f}x | {med['ansible'] / med['rollout']:.2f}x | "
                f"{med['rollout(rpc)'] / med['rollout']:.2f}x |"
            )
        poll = size["poll"]  # type: ignore[index]
        e, r = poll["erl_call"], poll["rpc"]  # type: ignore[index]
        ratios.append(
            f"| {size['n']} | one soak poll, host CPU (s) | erl_call {e['host_cpu_per_poll']:.4f}"
            f" | rpc {r['host_cpu_per_poll']:.3f} | rpc / erl_call "
            f"{r['host_cpu_per_poll'] / max(e['host_cpu_per_poll'], 1e-9):.0f}x | wall "
            f"{e['wall_median']:.3f} vs {r['wall_median']:.3f} |"
        )
    return "\n".join(lines + ratios)


CONTENDERS = ("rollout", "rollout(rpc)", "ssh", "ssh+erl_call", "ansible")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.realrel", description=__doc__)
    parser.add_argument("--sizes", default="5,10")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-ansible", action="store_true")
    parser.add_argument("--report", metavar="JSON", help="re-render a saved run and exit")
    args = parser.parse_args(argv)
    if args.report:
        print(table(json.loads(Path(args.report).read_text())["sizes"]))
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    load = Path("/proc/loadavg").read_text().split()[:3]
    sizes = []
    with tempfile.TemporaryDirectory(prefix="rollout-bench-real-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            work = Path(tmp) / f"n{n}"
            work.mkdir()
            sizes.append(measure_size(n, args.reps, not args.no_ansible, work, log))
    data = {"started": started, "load_before": load,
            "load_after": Path("/proc/loadavg").read_text().split()[:3],
            "command": "python -m bench.realrel " + " ".join(argv), "sizes": sizes}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"realrel-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=1))
    print(f"{data['command']} ({started}, load {' '.join(load)} -> "
          f"{' '.join(data['load_after'])}); saved {path}")  # type: ignore[arg-type]  # fmt: skip
    print(table(sizes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
