"""Endurance: a long soak watched from outside, and a week of scheduled ``advance`` calls.

Both run on SSH-only lab hosts (an sshd in front of a console stub, no BEAM), so a poll costs
milliseconds and a CI-sized run holds hundreds of polls; ``ROLLOUT_ENDURANCE=full`` runs
thousands (see ``endurance.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from rollout.ledger import Ledger, RunStatus
from rollout.playbook import load_playbook
from rollout_lab import Lab, control
from rollout_lab.testing import reset, running_lab
from tests.e2e.cli import CLI, fast_playbook

from .endurance import ResourceSampler, figure, mib, size, spread

pytestmark = pytest.mark.fault
HOSTS = 3
INTERVAL = 0.1  # seconds between polls
POLLS = size(400, 3000)
#: After this long the run has imported, connected and applied: the steady state begins.
WARM_UP = 4.0
#: ... and it ends this long before the process exits (the run's summary, closing connections).
WIND_DOWN = 2.0


@pytest.fixture(scope="module")
def stub_lab() -> Lab:
    with running_lab(HOSTS, with_release=False) as lab:
        yield lab


def _reset(lab: Lab) -> None:
    """Flags, metrics and the fleet's record and lease as on fresh hosts (a new ledger here)."""
    reset(lab)


@pytest.mark.scenario("endurance: a long soak keeps memory, descriptors, threads flat")
def test_long_soak_resources_stay_flat(
    stub_lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Over hundreds of polls the controller's RSS, fds, threads and SSH connections stay flat."""
    _reset(stub_lab)
    playbook = fast_playbook(tmp_path / "fast.yml")
    ledger = tmp_path / "ledger.db"
    cli = CLI(stub_lab.inventory, ledger)
    soak = POLLS * INTERVAL
    proc = cli.popen(
        "deploy", "--phase", "1", "--yes", "--json",
        "--soak", f"{soak:g}s", "--interval", f"{int(INTERVAL * 1000)}ms",
        playbook=playbook,
    )  # fmt: skip
    ports = [h.port for h in stub_lab.hosts]
    with ResourceSampler(proc.pid, ports, every=0.25) as sampler:
        out, err = proc.communicate(timeout=soak * 4 + 120)
    assert proc.returncode == 0, err[-2000:]

    with Ledger(ledger) as led:
        run = led.runs(limit=1)[0]
        samples = [e for e in led.events(run.id) if e.kind == "sample"]
    assert run.status is RunStatus.SUCCEEDED
    # The soak is timed, so a loaded machine polls less often than every INTERVAL (a quiet
    # CI run takes ~340 of the nominal 400; 154 were seen beside another suite): what the
    # bounds below need is hundreds of polls, not the nominal count.
    assert len(samples) >= POLLS // 4, f"only {len(samples)} polls in a {soak:g}s soak"
    for host in stub_lab.hosts:  # the phase is still on every host, read from its own files
        flags = control.read_flags(host)
        assert flags["use_new_error_handling"] is True and flags["use_sync_test_apis"] is True

    steady = sampler.steady(WARM_UP, WIND_DOWN)
    assert len(steady) >= 10, "the sampler saw too little of the soak"
    rss = [r.rss_kib for r in steady]
    fds = [r.fds for r in steady]
    threads = [r.threads for r in steady]
    conns = [r.connections for r in steady]
    # Bounds: memory may settle by a few MiB (allocator arenas, the rich/JSON buffers), but a
    # leak of even 10 KiB per poll would add 4 MiB over the CI run and 30 MiB at full size.
    assert spread(rss) <= 8 * 1024, f"RSS moved {mib(spread(rss))} during the soak"
    # ... and what growth there is must level off (SQLite's page cache filling up), not go on.
    late = rss[len(rss) // 2 :]
    assert late[-1] - late[0] <= 3 * 1024, f"RSS still grew {mib(late[-1] - late[0])} late on"
    # Descriptors: a poll's channels hold a pipe pair each while they run, so the count
    # swings by up to two per host; what must not move is the idle floor (no leaked fd).
    quarter = max(1, len(fds) // 4)
    assert min(fds[-quarter:]) == min(fds[:quarter]), f"fd floor moved: {fds[:quarter]} .."
    assert max(fds) <= min(fds) + 2 * HOSTS + 2, f"open descriptors ranged {min(fds)}..{max(fds)}"
    assert spread(threads) <= 2, f"threads ranged {min(threads)}..{max(threads)}"
    # One connection per host for the whole soak. A poll that times out on a loaded machine
    # reconnects its host, and the sampler may catch the old and the new socket for a moment:
    # such overlaps are allowed in at most 2% of the samples (one in CI-sized runs), never
    # more than one extra connection per host, and never a host without its connection.
    overlaps = [c for c in conns if c > HOSTS]
    assert len(overlaps) <= max(1, len(conns) // 50), (
        f"{len(overlaps)} of {len(conns)} samples saw more than {HOSTS} SSH connections: "
        "connections are being opened during the soak"
    )
    assert max(conns) <= 2 * HOSTS, f"up to {max(conns)} SSH connections for {HOSTS} hosts"
    assert min(conns) == HOSTS, "a host's connection dropped and was not held for the soak"
    size_bytes = ledger.stat().st_size + _wal(ledger)
    figure(
        request,
        f"{len(samples)} polls in {soak:g}s on {HOSTS} hosts; "
        f"RSS {mib(min(rss))}..{mib(max(rss))}, "
        f"fds {min(fds)}..{max(fds)}, threads {min(threads)}..{max(threads)}, "
        f"SSH connections {min(conns)}..{max(conns)}; ledger {size_bytes / 1024:.0f} KiB "
        f"({size_bytes / len(samples):.0f} B/poll)",
    )


def _short_soaks(playbook: Path, seconds: float) -> Path:
    """``playbook`` with every phase soaking ``seconds`` and no approval gates."""
    data = yaml.safe_load(playbook.read_text())
    for phase in data["phases"]:
        phase["soak"] = f"{max(1, round(seconds))}s"
        phase.get("gates", {}).pop("approval", None)
    playbook.write_text(yaml.safe_dump(data, sort_keys=False))
    return playbook


def _wal(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


ADVANCES = size(60, 600)


@pytest.mark.scenario("endurance: a week of advance calls against one ledger")
def test_week_of_advance_calls(
    stub_lab: Lab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Hundreds of ``advance`` calls in a row: each one ends, the ledger grows linearly with the
    samples it records, and status, history and report still answer on the grown ledger."""
    _reset(stub_lab)
    # Soaks sized so that the week spends most of its calls soaking (about 0.7 s a call here);
    # approval gates have tests of their own.
    playbook = _short_soaks(fast_playbook(tmp_path / "fast.yml"), ADVANCES * 0.7 / 5 * 0.8)
    ledger = tmp_path / "ledger.db"
    cli = CLI(stub_lab.inventory, ledger)
    ran = cli("deploy", "--phase", "1", "--yes", "--no-wait", playbook=playbook)
    assert ran.code == 0, ran.stderr

    sizes: list[tuple[int, int]] = []  # (samples so far, ledger bytes)
    codes: dict[int, int] = {}
    started = time.monotonic()
    for _ in range(ADVANCES):
        ran = cli("advance", playbook=playbook)
        codes[ran.code] = codes.get(ran.code, 0) + 1
        assert ran.code == 0, ran.stdout[-1500:] + ran.stderr[-1500:]
        with Ledger(ledger) as led:
            n = sum(
                1 for r in led.runs(limit=ADVANCES + 10)
                for e in led.events(r.id) if e.kind == "sample"
            )  # fmt: skip
        sizes.append((n, ledger.stat().st_size + _wal(ledger)))
    elapsed = time.monotonic() - started

    with Ledger(ledger) as led:
        runs = led.runs(limit=ADVANCES + 10)
        state = led.state(runs[0].inventory)
        assert all(r.status is not RunStatus.RUNNING for r in runs), "a run has no outcome"
        assert led.open_intents(runs[0].inventory) == []
    assert state.phase is not None and state.phase >= 3, f"the week ended at {state.phase}"
    want = load_playbook(playbook).phase(state.phase).state.as_dict()
    for host in stub_lab.hosts:  # the recorded phase is what every host holds
        assert control.read_flags(host) == want, host.name

    # Linear growth: the bytes per recorded sample over the second half of the samples within
    # 2x of the first half's (pages are allocated 4 KiB at a time, so compare wide windows).
    (n0, b0), (n2, b2) = next(p for p in sizes if p[0] > 0), sizes[-1]
    n1, b1 = next(p for p in sizes if p[0] >= (n0 + n2) / 2)
    assert n2 > n1 > n0, f"too few samples recorded: {sizes}"
    first, second = (b1 - b0) / (n1 - n0), (b2 - b1) / (n2 - n1)
    assert second <= 2 * first + 8192 / (n2 - n1), (first, second)

    timings = {}
    for args in (("status",), ("history",), ("report", "--run", runs[-1].id)):
        t0 = time.monotonic()
        ran = cli(*args, playbook=playbook)
        timings[args[0]] = time.monotonic() - t0
        assert ran.code == 0, ran.stderr
    figure(
        request,
        f"{ADVANCES} advance calls in {elapsed:.0f}s ({elapsed / ADVANCES:.2f}s each), "
        f"{n2} samples, ledger {b2 / 1024:.0f} KiB ({first:.0f} then {second:.0f} B/sample); "
        f"on it: status {timings['status']:.2f}s, history {timings['history']:.2f}s, "
        f"report {timings['report']:.2f}s",
    )
