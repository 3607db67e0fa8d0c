"""The three ways of doing a job: the tool, the raw OpenSSH floor, and ansible-playbook.

Each contender writes what it needs once per lab (scripts, playbooks, config), untimed, and
then runs one job per call, returning a :class:`~bench.measure.Sample`. A run that did not do
the job (non-zero exit, a host without a console result) raises :class:`RunFailed`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rollout.models import Host, Playbook

from . import ansible, fanout
from .fleet import snapshot
from .jobs import Job
from .measure import RunFailed, Sample, run

REPO = Path(__file__).resolve().parent.parent
INVOKE = REPO / ".venv" / "bin" / "invoke"
PYTHON = REPO / ".venv" / "bin" / "python"

#: Seconds every remote console call may take (the playbook's command_timeout is 60 s).
COMMAND_TIMEOUT = 60.0
#: No measured run of any contender may take longer than this.
RUN_DEADLINE = 300.0


def tool_env(ledger: Path, console: str | None = None) -> dict[str, str]:
    """The caller's environment with a private ledger and no webhook (traffic stays local);
    ``console`` forces the tool's console path (ROLLOUT_CONSOLE)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
    # an installed tool has its bytecode cached; a shell that turns caching off would make
    # every run compile the engine from source (~0.3-1 s of CPU), which is not the tool's cost
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["ROLLOUT_LEDGER"] = str(ledger)
    if console:
        env["ROLLOUT_CONSOLE"] = console
    return env


class Tool:
    """This tool: ``invoke <job> --inventory INV`` from a copy of the job's ledger template."""

    name = "rollout"

    def __init__(
        self, inventory: Path, ledgers: dict[str, Path], console: str | None = None
    ) -> None:
        self.inventory = inventory
        self.ledgers = ledgers
        self.console = console  # None: the tool's own choice (auto)
        if console:
            self.name = f"rollout({console})"

    def run(self, job: Job, run_dir: Path, *, sample_tree: bool = False) -> Sample:
        ledger = run_dir / "ledger.db"
        snapshot(self.ledgers[job.ledger], ledger)
        argv = [str(INVOKE), *job.tool_args, "--inventory", str(self.inventory)]
        return run(
            argv,
            cwd=REPO,
            env=tool_env(ledger, self.console),
            stdout=run_dir / f"{self.name}-{job.name}.log",
            deadline=RUN_DEADLINE,
            sample_tree=sample_tree,
        )


class PatchedTool(Tool):
    """The tool with a proposed transport change applied in-process (see bench/patched.py)."""

    def __init__(self, inventory: Path, ledgers: dict[str, Path], patch: str) -> None:
        super().__init__(inventory, ledgers)
        self.patch = patch
        self.name = f"rollout+{patch}"

    def run(self, job: Job, run_dir: Path, *, sample_tree: bool = False) -> Sample:
        ledger = run_dir / "ledger.db"
        snapshot(self.ledgers[job.ledger], ledger)
        argv = [str(PYTHON), "-m", "bench.patched", *job.tool_args,
                "--inventory", str(self.inventory)]  # fmt: skip
        return run(
            argv,
            cwd=REPO,
            env={**tool_env(ledger), "BENCH_PATCH": self.patch},
            stdout=run_dir / f"{self.name}-{job.name}.log",
            deadline=RUN_DEADLINE,
            sample_tree=sample_tree,
        )


class Fanout:
    """The floor: one ``ssh`` per host in parallel, from a generated bash script."""

    name = "ssh"

    def __init__(
        self, hosts: Sequence[Host], playbook: Playbook, jobs: Sequence[Job], work: Path,
        console: str = "rpc",
    ) -> None:  # fmt: skip
        self.hosts = list(hosts)
        if console != "rpc":
            self.name = f"ssh+{console}"
        where = work / ("fanout" if console == "rpc" else f"fanout-{console}")
        self.scripts = {
            job.name: fanout.write_script(
                where / job.name / "run.sh", self.hosts, playbook, job, COMMAND_TIMEOUT,
                console,
            )
            for job in jobs
        }  # fmt: skip
        self.jobs = {job.name: job for job in jobs}

    def run(self, job: Job, run_dir: Path, *, sample_tree: bool = False) -> Sample:
        script = self.scripts[job.name]
        out = script.parent / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        sample = run(
            ["bash", str(script)],
            stdout=run_dir / f"{self.name}-{job.name}.log",
            deadline=RUN_DEADLINE,
            sample_tree=sample_tree,
        )
        bad = fanout.check_outputs(out, self.hosts, job)
        if bad:
            raise RunFailed(f"ssh fan-out: no console result from {', '.join(bad[:5])}")
        return sample


class Ansible:
    """ansible-playbook with the raw module, ControlPersist, pipelining and forks = hosts."""

    name = "ansible"

    def __init__(
        self,
        executable: Path,
        inventory: Path,
        hosts: Sequence[Host],
        playbook: Playbook,
        jobs: Sequence[Job],
        work: Path,
    ) -> None:
        self.executable = executable
        self.inventory = inventory
        self.hosts = list(hosts)
        self.work = work / "ansible"
        self.work.mkdir(parents=True, exist_ok=True)
        self.playbooks = {
            job.name: ansible.write_playbook(
                self.work / f"{job.name}.yml", playbook, job, COMMAND_TIMEOUT
            )
            for job in jobs
        }

    def run(self, job: Job, run_dir: Path, *, sample_tree: bool = False) -> Sample:
        # A short path: control sockets must fit in a unix socket name (108 bytes).
        control = Path(tempfile.mkdtemp(prefix="rbc-", dir="/tmp"))
        try:
            config = ansible.write_config(self.work, self.hosts, control)
            return run(
                [str(self.executable), "-i", str(self.inventory), str(self.playbooks[job.name])],
                env=ansible.env(self.work, config),
                stdout=run_dir / f"{self.name}-{job.name}.log",
                deadline=RUN_DEADLINE,
                sample_tree=sample_tree,
                tree_marker=str(control),
            )
        finally:
            ansible.stop_masters(control)
