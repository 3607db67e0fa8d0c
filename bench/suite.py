"""The benchmark suite: every contender, every job, every lab size, in one run.

For each size N a private lab of N SSH-only hosts (their console is the lab's stub, so what
is measured is the tool and SSH, not a VM) is brought up on free loopback ports, and each
repetition runs every job with every contender back to back, in an order that rotates with
the repetition, each from the same starting state (paired, interleaved runs). Then one more
run per contender samples the controller's memory. A lab of real Foundation releases (N=5)
follows, with the same jobs and the erl_call study. Everything is bounded: repetitions are
counted, every run has a deadline, and every lab is torn down even on failure.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from rollout.inventory import load_inventory
from rollout.ledger import Ledger
from rollout.models import Host, Playbook
from rollout.playbook import load_playbook

from . import ansible, erlstudy
from .contenders import INVOKE, REPO, Ansible, Fanout, PatchedTool, Tool, tool_env
from .fleet import set_stub_phase, snapshot, stub_hosts_off_phase
from .jobs import Job, Step, StepKind, deploy_args, make_jobs
from .measure import RunFailed, Sample, run

PLAYBOOK = REPO / "playbooks" / "otp_refactor.yml"
Log = Callable[[str], None]


@dataclass(frozen=True)
class Config:
    """What to run: lab sizes and repetitions per size, and which parts."""

    sizes: tuple[int, ...] = (10, 50, 100, 250)
    reps: tuple[int, ...] = (5, 4, 3, 2)
    with_ansible: bool = True
    real_hosts: int = 5  # 0: skip the real-release part
    real_reps: int = 3
    erl_reps: int = 7
    cli_reps: int = 10
    profile: bool = True  # sample where one tool deploy's time goes (at the middle size)
    #: Also time the tool with these bench/patched.py patch sets, each a contender.
    patches: tuple[str, ...] = ("known_hosts",)
    jobs: tuple[str, ...] = ("deploy", "rollback", "status")
    memory: bool = True
    quick: bool = False


QUICK = Config(sizes=(10,), reps=(3,), real_reps=2, erl_reps=3, cli_reps=5, quick=True)


@dataclass
class Record:
    """One measured run."""

    part: str  # "stub" or "release"
    n: int
    job: str
    contender: str
    rep: int  # -1: the memory run
    seconds: float
    cpu_seconds: float
    max_rss_kib: int | None
    tree_rss_kib: int | None


@dataclass
class Results:
    config: Config
    started: str
    machine: dict[str, str]
    command: str
    jobs: dict[str, str] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    cli: dict[str, list[float]] = field(default_factory=dict)
    profile: dict[str, object] = field(default_factory=dict)
    ledger_ab: dict[str, list[float]] = field(default_factory=dict)
    erl: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0


class Contender(Protocol):
    name: str

    def run(self, job: Job, run_dir: Path, *, sample_tree: bool = False) -> Sample: ...


def has_emergency() -> bool:
    """Whether this checkout's ``invoke rollback`` has ``--emergency``."""
    proc = subprocess.run(
        [str(INVOKE), "--help", "rollback"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return "--emergency" in proc.stdout


def machine() -> dict[str, str]:
    cpus = Path("/proc/cpuinfo").read_text().count("processor\t:")
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr
    return {
        "python": platform.python_version(),
        "cpus": str(cpus),
        "kernel": platform.release(),
        "openssh": ssh.strip(),
        "ansible_core": ansible.VERSION,
    }


# -- CLI start-up ----------------------------------------------------------------------------


def cli_startup(reps: int, work: Path, log: Log) -> dict[str, list[float]]:
    """``invoke --list``, ``invoke status`` with no inventory, and what Python alone costs."""
    python = str(REPO / ".venv" / "bin" / "python")
    missing = work / "no-such-inventory.yml"
    probes: dict[str, list[str]] = {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import invoke'": [python, "-c", "import invoke"],
        "python -c 'import rollout.commands'": [python, "-c", "import rollout.commands"],
        "python -c 'import paramiko'": [python, "-c", "import paramiko"],
        "python -c 'import fabric'": [python, "-c", "import fabric"],
        "invoke --list": [str(INVOKE), "--list"],
        "invoke status (empty ledger, no inventory)": [
            str(INVOKE), "status", "--inventory", str(missing),
        ],
    }  # fmt: skip
    out: dict[str, list[float]] = {name: [] for name in probes}
    for rep in range(reps):
        for name, argv in probes.items():
            ledger = work / f"cli-ledger-{rep}.db"
            sample = run(argv, cwd=REPO, env=tool_env(ledger), deadline=60, check=False)
            out[name].append(sample.seconds)
    log("cli: " + ", ".join(f"{k} {sorted(v)[len(v) // 2]:.3f}s" for k, v in out.items()))
    return out


# -- one lab ---------------------------------------------------------------------------------


class StubFleet:
    """SSH-only hosts: flags set and checked through the stub's files."""

    def __init__(self, hosts: Sequence[Host], playbook: Playbook) -> None:
        self.hosts, self.playbook = hosts, playbook

    def set_phase(self, phase: int) -> None:
        set_stub_phase(self.hosts, self.playbook, phase)

    def check(self, phase: int) -> None:
        bad = stub_hosts_off_phase(self.hosts, self.playbook, phase)
        if bad:
            raise RunFailed(f"hosts not at phase {phase} after the run: {', '.join(bad[:5])}")


class ReleaseFleet:
    """Hosts with a real release: flags set by a raw SSH fan-out of the console's apply."""

    def __init__(self, hosts: Sequence[Host], playbook: Playbook, work: Path) -> None:
        phases = (0, 1, 2)
        resets = [
            Job(f"reset{p}", f"reset to phase {p}", (), (Step(StepKind.APPLY, p),), p, "empty")
            for p in phases
        ]
        self.fanout = Fanout(hosts, playbook, resets, work / "reset")
        self.resets = {p: job for p, job in zip(phases, resets, strict=True)}
        self.work = work

    def set_phase(self, phase: int) -> None:
        self.fanout.run(self.resets[phase], self.work)

    def check(self, phase: int) -> None:
        pass  # every contender verifies by read-back itself


def ledger_templates(
    fleet: StubFleet | ReleaseFleet, tool_inventory: Path, work: Path
) -> dict[str, Path]:
    """Ledgers as the tool leaves them: empty, after deploying phase 1, after phase 2."""
    empty = work / "ledger-empty.db"
    Ledger(empty).close()
    templates = {"empty": empty}
    fleet.set_phase(0)
    current = empty
    for phase in (1, 2):
        ledger = work / f"ledger-run{phase}.db"
        snapshot(current, ledger)
        argv = [str(INVOKE), *deploy_args(phase), "--inventory", str(tool_inventory)]
        run(argv, cwd=REPO, env=tool_env(ledger), stdout=work / f"template{phase}.log")
        templates[f"phase{phase}"] = work / f"ledger-phase{phase}.db"
        snapshot(ledger, templates[f"phase{phase}"])
        current = templates[f"phase{phase}"]
    return templates


def measure_lab(
    part: str,
    n: int,
    reps: int,
    contenders: Sequence[Contender],
    jobs: Sequence[Job],
    fleet: StubFleet | ReleaseFleet,
    work: Path,
    log: Log,
    *,
    memory: bool = True,
    warm_up: bool = True,
) -> list[Record]:
    """Warm up, then ``reps`` paired rounds of every job by every contender, then memory."""
    records: list[Record] = []
    run_dir = work / "runs"
    run_dir.mkdir(exist_ok=True)
    target = {job.name: (1 if job.name in ("deploy", "rollback") else None) for job in jobs}

    def one(job: Job, contender: Contender, rep: int, sample_tree: bool = False) -> Sample:
        fleet.set_phase(job.start_phase)
        sample = contender.run(job, run_dir, sample_tree=sample_tree)
        phase = target[job.name]
        if phase is not None:
            fleet.check(phase)
        records.append(
            Record(
                part,
                n,
                job.name,
                contender.name,
                rep,
                sample.seconds,
                sample.cpu_seconds,
                sample.max_rss_kib,
                sample.tree_rss_kib,
            )
        )
        return sample

    for contender in contenders if warm_up else ():  # page cache, .pyc files
        fleet.set_phase(jobs[-1].start_phase)
        contender.run(jobs[-1], run_dir)
    for rep in range(reps):
        for j, job in enumerate(jobs):
            k = (rep + j) % len(contenders)
            for contender in [*contenders[k:], *contenders[:k]]:
                sample = one(job, contender, rep)
                log(f"{part} N={n} rep {rep + 1}/{reps} {job.name:8} {contender.name:8} "
                    f"{sample.seconds:7.3f}s cpu {sample.cpu_seconds:6.2f}s")  # fmt: skip
    deploys = [j for j in jobs if j.name == "deploy"]
    for deploy in deploys if memory else ():
        for contender in contenders:
            sample = one(deploy, contender, -1, sample_tree=True)
            log(f"{part} N={n} memory {contender.name:8} tree peak "
                f"{(sample.tree_rss_kib or 0) / 1024:.0f} MiB")  # fmt: skip
    return records


def contenders_for(
    hosts: Sequence[Host],
    playbook: Playbook,
    inventory: Path,
    jobs: Sequence[Job],
    ledgers: dict[str, Path],
    work: Path,
    ansible_bin: Path | None,
    patches: Sequence[str] = (),
) -> list[Contender]:
    out: list[Contender] = [Tool(inventory, ledgers)]
    out += [PatchedTool(inventory, ledgers, patch) for patch in patches]
    out.append(Fanout(hosts, playbook, jobs, work))
    if ansible_bin is not None:
        out.append(Ansible(ansible_bin, inventory, hosts, playbook, jobs, work))
    return out


def profile_deploy(
    fleet: StubFleet, inventory: Path, ledgers: dict[str, Path], work: Path
) -> dict[str, object]:
    """One sampled tool deploy: which categories its threads spend their time in."""
    fleet.set_phase(0)
    ledger = work / "profile-ledger.db"
    snapshot(ledgers["empty"], ledger)
    out = work / "profile.json"
    argv = [sys.executable, "-m", "bench.sampler", str(out), "--", *deploy_args(1),
            "--inventory", str(inventory)]  # fmt: skip
    run(argv, cwd=REPO, env=tool_env(ledger), stdout=work / "profile.log", deadline=300)
    data: dict[str, object] = json.loads(out.read_text())
    return data


def ledger_ab(
    fleet: StubFleet, inventory: Path, ledgers: dict[str, Path], work: Path, reps: int
) -> dict[str, list[float]]:
    """The same deploy with the SQLite ledger on disk and on tmpfs (where fsync costs
    nothing), and on a local PostgreSQL server (fsync on, Unix socket), rounds interleaved."""
    from rollout_lab.postgres import Cluster

    shm = Path(tempfile.mkdtemp(prefix="rollout-bench-", dir="/dev/shm"))
    out: dict[str, list[float]] = {"disk": [], "tmpfs": [], "postgresql": []}
    try:
        with Cluster.started() as pg:
            for rep in range(reps):
                places: list[tuple[str, Path | None]] = [
                    ("disk", work), ("tmpfs", shm), ("postgresql", None)
                ]  # fmt: skip
                k = rep % len(places)
                for name, where in [*places[k:], *places[:k]]:
                    fleet.set_phase(0)
                    if where is None:
                        target = pg.create_database()
                        Ledger(target).close()  # the schema, as an existing team ledger has
                    else:
                        target = str(where / "ab-ledger.db")
                        snapshot(ledgers["empty"], Path(target))
                    argv = [str(INVOKE), *deploy_args(1), "--inventory", str(inventory)]
                    log = work / f"ab-{name}-{rep}.log"
                    env = {**tool_env(Path("unused")), "ROLLOUT_LEDGER": target}
                    out[name].append(run(argv, cwd=REPO, env=env, stdout=log).seconds)
                    fleet.check(1)
    finally:
        for path in shm.iterdir():
            path.unlink()
        shm.rmdir()
    return out


# -- the whole run ---------------------------------------------------------------------------


def run_suite(config: Config, command: str, log: Log = print) -> Results:
    """Run everything ``config`` asks for and return the results (nothing written)."""
    from rollout_lab.testing import running_lab

    started = time.perf_counter()
    playbook = load_playbook(PLAYBOOK)
    ansible_bin = ansible.ensure(log) if config.with_ansible else None
    jobs = tuple(j for j in make_jobs(has_emergency()) if j.name in config.jobs)
    results = Results(
        config=config,
        started=time.strftime("%Y-%m-%d %H:%M:%S"),
        machine=machine(),
        command=command,
        jobs={job.name: job.title for job in jobs},
    )
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        work = Path(tmp)
        results.cli = cli_startup(config.cli_reps, work, log)
        middle = config.sizes[len(config.sizes) // 2]
        for n, reps in zip(config.sizes, config.reps, strict=True):
            lab_work = work / f"stub{n}"
            lab_work.mkdir()
            log(f"lab: {n} SSH-only hosts")
            with running_lab(n, with_release=False, base_port=_free_ports(n)) as lab:
                hosts = load_inventory(lab.inventory).hosts
                fleet = StubFleet(hosts, playbook)
                ledgers = ledger_templates(fleet, lab.inventory, lab_work)
                contenders = contenders_for(
                    hosts, playbook, lab.inventory, jobs, ledgers, lab_work, ansible_bin,
                    config.patches,
                )  # fmt: skip
                results.records += measure_lab(
                    "stub", n, reps, contenders, jobs, fleet, lab_work, log,
                    warm_up=n == config.sizes[0], memory=config.memory,
                )  # fmt: skip
                if config.profile and n == middle and "deploy" in config.jobs:
                    results.profile = profile_deploy(fleet, lab.inventory, ledgers, lab_work)
                    results.profile["n"] = n
                    results.ledger_ab = ledger_ab(fleet, lab.inventory, ledgers, lab_work, 2)
                    results.ledger_ab["n"] = [float(n)]
        if config.real_hosts:
            n = config.real_hosts
            lab_work = work / "release"
            lab_work.mkdir()
            log(f"lab: {n} hosts with real Foundation releases")
            with running_lab(n, with_release=True, base_port=_free_ports(n)) as lab:
                hosts = load_inventory(lab.inventory).hosts
                rfleet = ReleaseFleet(hosts, playbook, lab_work)
                ledgers = ledger_templates(rfleet, lab.inventory, lab_work)
                contenders = contenders_for(
                    hosts, playbook, lab.inventory, jobs, ledgers, lab_work, ansible_bin
                )
                results.records += measure_lab(
                    "release", n, config.real_reps, contenders, jobs, rfleet, lab_work, log,
                    memory=False,
                )  # fmt: skip
                results.erl = erlstudy.study(hosts, playbook, lab_work, config.erl_reps, log)
    results.seconds = time.perf_counter() - started
    return results


def _free_ports(n: int, tries: int = 10) -> int:
    """A base port for an ``n``-host lab; the previous lab's sshds may take a few seconds to
    let go of theirs (bounded: ``tries`` searches two seconds apart)."""
    from rollout_lab.testing import free_base_port

    for _ in range(tries - 1):
        try:
            return free_base_port(n)
        except RuntimeError:
            time.sleep(2)
    return free_base_port(n)


def to_json(results: Results) -> str:
    return json.dumps(asdict(results), indent=1, default=str)
