"""Backups and restores on the fake backend, with a fake host filesystem behind tar/sha256."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout import backup
from rollout.backup import (
    BackupIncomplete,
    RestoreIncomplete,
    latest_backup_after,
    list_backups,
    load_backup,
    remote,
    restore_backup,
    take_backup,
)
from rollout.clock import SYSTEM, with_parts
from rollout.errors import InputError, UsageError
from rollout.events import Collector, Kind
from rollout.executor import Executor
from rollout.ledger import Ledger
from rollout.models import Host, Playbook
from rollout.playbook import load_playbook
from rollout.testing import FakeBackend, FakeClock, FakeHost
from rollout.transport.base import CommandResult

REPO = Path(__file__).resolve().parents[2]
NAMES = ("h1", "h2")
STATE = "/srv/foundation/state"


def at(now: float = 1_790_000_000.0) -> FakeClock:
    """A clock standing still at ``now`` (a backup reads its wall time once)."""
    return FakeClock(wall=now)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def under(fake: FakeHost, rel: str) -> list[str]:
    path = "/" + rel
    return sorted(p for p in fake.files if p == path or p.startswith(path + "/"))


def filesystem(fake: FakeHost, argv: tuple[str, ...]) -> CommandResult:
    """Plays tar, mktemp, base64 and sha256sum over ``fake.files`` for backup's scripts."""
    script = argv[2] if argv[:2] == ("sh", "-c") else None
    if script == remote.ARCHIVE_SCRIPT:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for rel in argv[4:]:
                if not under(fake, rel):
                    return fake.result(argv, 2, stderr=f"tar: {rel}: Cannot stat")
                for path in under(fake, rel):
                    info = tarfile.TarInfo(path[1:])
                    info.size = len(fake.files[path])
                    tar.addfile(info, io.BytesIO(fake.files[path]))
        data = buf.getvalue()
        text = base64.b64encode(data).decode()
        return fake.result(argv, stdout=f"ROLLOUT-ARCHIVE/1 {sha(data)} {len(data)}\n{text}")
    if argv == ("mktemp",):
        fake.files["/tmp/tmp.upload"] = b""
        return fake.result(argv, stdout="/tmp/tmp.upload\n")
    if script == remote.APPEND_SCRIPT:
        fake.files[argv[4]] += argv[5].encode()
        return fake.result(argv)
    if script == remote.EXTRACT_SCRIPT:
        data = base64.b64decode(fake.files.pop(argv[4]))
        if sha(data) != argv[5]:
            return fake.result(argv, 3, stderr="checksum")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                handle = tar.extractfile(member)
                assert handle is not None
                fake.files["/" + member.name] = handle.read()
        return fake.result(argv)
    if script == remote.LIST_SCRIPT:
        lines = [f"{sha(fake.files[p])}  {p[1:]}" for rel in argv[4:] for p in under(fake, rel)]
        return fake.result(argv, stdout="".join(line + "\n" for line in lines))
    if argv[:2] == ("rm", "-f"):
        fake.files.pop(argv[-1], None)
        return fake.result(argv)
    return fake.result(argv, 127, stderr=f"unexpected command {argv}")


@pytest.fixture
def playbook() -> Playbook:
    return load_playbook(REPO / "playbooks" / "otp_refactor.yml")


@pytest.fixture
def fleet(playbook: Playbook) -> FakeBackend:
    fakes = {n: FakeHost(n, playbook.flags, handler=filesystem) for n in NAMES}
    for name, fake in fakes.items():
        fake.files[f"{STATE}/db.bin"] = f"{name} state".encode()
        fake.files[f"{STATE}/sub/log"] = b"\x00\x01binary"
    return FakeBackend(fakes)


@pytest.fixture
def hosts() -> tuple[Host, ...]:
    return tuple(Host(n, "127.0.0.1", state_paths=(STATE,)) for n in NAMES)


@pytest.fixture
def events() -> Collector:
    return Collector()


@pytest.fixture
def ex(
    tmp_path: Path, playbook: Playbook, fleet: FakeBackend, events: Collector
) -> Iterator[Executor]:
    ledger = Ledger(tmp_path / "ledger.db")
    run = ledger.start_run("inv", "invoke backup", ())
    yield Executor(
        playbook=playbook,
        inventory_name="inv",
        hosts=list(NAMES),
        backend=fleet,
        ledger=ledger,
        run=run,
        emit=events,
        clock=with_parts(SYSTEM, sleep=lambda _s: None),
    )
    ledger.close()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "backups"


def set_phase(fleet: FakeBackend, playbook: Playbook, phase: int) -> None:
    for fake in fleet.fakes.values():
        fake.flags.update(playbook.phase(phase).state.as_dict())


def test_backup_writes_manifest_with_flags_and_checked_archives(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """A backup records every host's read-back flags and an archive whose checksum matches."""
    set_phase(fleet, playbook, 2)
    taken = take_backup(ex, "inv", playbook, hosts, root, 2, clock=at())
    assert taken.id == "20260921T141320Z" and taken.complete
    manifest = json.loads((root / "inv" / taken.id / "manifest.json").read_text())
    assert manifest["complete"] is True and manifest["recorded_phase"] == 2
    assert manifest["who"] == ex.run.who and manifest["playbook"] == playbook.path
    for name in NAMES:
        entry = manifest["hosts"][name]
        assert entry["flags"] == playbook.phase(2).state.as_dict()
        assert entry["node"] == f"foundation_{name}@fake"
        stored = (root / "inv" / taken.id / name / "state.tar.gz").read_bytes()
        assert entry["state"]["sha256"] == sha(stored) and entry["state"]["size"] == len(stored)
        with tarfile.open(fileobj=io.BytesIO(stored)) as tar:
            assert sorted(tar.getnames()) == [
                "srv/foundation/state/db.bin",
                "srv/foundation/state/sub/log",
            ]
    assert load_backup(root, "inv", taken.id) == taken


def test_backup_events_go_to_the_ledger(
    ex: Executor, playbook: Playbook, hosts: tuple[Host, ...], root: Path, events: Collector
) -> None:
    """Each host's backup is an ok BACKUP event, journaled in the ledger with the backup id."""
    taken = take_backup(ex, "inv", playbook, hosts, root, None, clock=at())
    per_host = [e for e in events.of(Kind.BACKUP) if e.host]
    assert [(e.host, e.ok) for e in per_host] == [("h1", True), ("h2", True)]
    journal = [e for e in ex.ledger.events(ex.run.id) if e.kind == "backup"]
    assert len(journal) == 4 and all(e.data["data"]["backup"] == taken.id for e in journal)  # type: ignore[index]


def test_host_without_state_paths_backs_up_flags_only(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, root: Path
) -> None:
    """No state_paths: no command runs on the host, and the entry has no archive."""
    taken = take_backup(ex, "inv", playbook, [Host("h1", "x")], root, None, clock=at())
    assert taken.host("h1").archive is None and fleet.fakes["h1"].commands == []


def test_unreachable_host_leaves_an_incomplete_backup(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """A host that cannot be read fails the backup; the manifest says incomplete, never complete."""
    fleet.fakes["h2"].reachable = False
    with pytest.raises(BackupIncomplete) as caught:
        take_backup(ex, "inv", playbook, hosts, root, 1, clock=at())
    assert caught.value.exit_code == 5 and "h2" in caught.value.message
    listed = list_backups(root, "inv")
    assert [(b.id, b.complete, b.hosts) for b in listed] == [
        (caught.value.backup.id, False, ("h1",))
    ]
    assert latest_backup_after(root, "inv", None) is None


def test_missing_state_path_fails_that_host(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """tar failing on a host (path gone) fails the backup naming the host and tar's message."""
    fleet.fakes["h1"].files.clear()
    with pytest.raises(BackupIncomplete, match="h1: archiving state_paths failed.*Cannot stat"):
        take_backup(ex, "inv", playbook, hosts, root, 1, clock=at())


def test_archive_that_differs_from_the_hosts_checksum_is_refused(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """If the bytes received do not match the host's own sha256, the host's backup fails."""

    def corrupt(fake: FakeHost, argv: tuple[str, ...]) -> CommandResult:
        result = filesystem(fake, argv)
        head, _, body = result.stdout.partition("\n")
        data = bytearray(base64.b64decode(body))
        data[-1] ^= 0xFF
        return fake.result(argv, stdout=head + "\n" + base64.b64encode(bytes(data)).decode())

    fleet.fakes["h2"].handler = corrupt
    with pytest.raises(BackupIncomplete, match="h2: the archive read back differs"):
        take_backup(ex, "inv", playbook, hosts, root, 1, clock=at())


@pytest.mark.parametrize("path", ["/srv/../etc", "srv/x", "/"])
def test_unsafe_state_paths_are_refused_before_any_command(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, root: Path, path: str
) -> None:
    """A state path with '..', a relative one, or / itself is refused; nothing runs."""
    with pytest.raises(UsageError, match="state path"):
        take_backup(ex, "inv", playbook, [Host("h1", "x", state_paths=(path,))], root, 1)
    assert fleet.fakes["h1"].commands == [] and not root.exists()


def test_two_backups_in_one_second_get_distinct_ids(
    ex: Executor, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """Backup ids are the UTC second, with -2 appended when that second is taken."""
    first = take_backup(ex, "inv", playbook, hosts, root, 1, clock=at())
    second = take_backup(ex, "inv", playbook, hosts, root, 1, clock=at())
    assert second.id == first.id + "-2"
    assert [b.id for b in list_backups(root, "inv")] == [first.id, second.id]


def test_corrupt_manifest_and_tampered_archive_are_input_errors(
    ex: Executor, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """load_backup names the manifest or archive that is missing, malformed or changed."""
    taken = take_backup(ex, "inv", playbook, hosts, root, 1, clock=at())
    archive = taken.path / "h1" / "state.tar.gz"
    archive.write_bytes(archive.read_bytes() + b"x")
    with pytest.raises(InputError, match=f"{archive}: checksum mismatch"):
        load_backup(root, "inv", taken.id)
    taken.manifest.write_text("{not json")
    with pytest.raises(InputError, match=f"{taken.manifest}: not readable JSON"):
        load_backup(root, "inv", taken.id)
    taken.manifest.write_text(json.dumps({"format": 1, "id": taken.id}))
    with pytest.raises(InputError, match=r"\(inventory\): missing 'inventory'"):
        load_backup(root, "inv", taken.id)
    assert list_backups(root, "inv")[0].problem is not None
    with pytest.raises(InputError, match="no such backup"):
        load_backup(root, "inv", "20200101T000000Z")
    with pytest.raises(UsageError, match="not a backup id"):
        load_backup(root, "inv", "../etc")


def test_latest_backup_after_picks_a_fresh_complete_covering_backup(
    ex: Executor, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """The backup gate accepts only a complete backup taken after the phase changed."""
    old = take_backup(ex, "inv", playbook, hosts, root, 1, clock=at(1000.0))
    new = take_backup(ex, "inv", playbook, hosts[:1], root, 1, clock=at(2000.0))
    assert latest_backup_after(root, "inv", 500.0) == new.info
    assert latest_backup_after(root, "inv", 500.0, hosts=NAMES) == old.info
    assert latest_backup_after(root, "inv", 1500.0, hosts=NAMES) is None
    assert latest_backup_after(root, "inv", 2500.0) is None


def test_restore_puts_back_exactly_the_backed_up_flags(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """After flags moved on, a restore brings back exactly what was backed up, read back."""
    set_phase(fleet, playbook, 2)
    fleet.fakes["h2"].flags["use_sync_test_apis"] = False  # hosts may differ: each gets its own
    taken = take_backup(ex, "inv", playbook, hosts, root, 2, clock=at())
    before = {n: dict(f.flags) for n, f in fleet.fakes.items()}
    set_phase(fleet, playbook, 4)
    report = restore_backup(ex, load_backup(root, "inv", taken.id), hosts, restore_state=False)
    assert {n: dict(f.flags) for n, f in fleet.fakes.items()} == before
    assert all(r.ok and r.exact for r in report.results) and report.phase is None
    assert fleet.fakes["h1"].files[f"{STATE}/db.bin"] == b"h1 state"  # state untouched
    intents = ex.ledger.intents(ex.run.id)
    assert [(i.action, i.ok) for i in intents] == [("restore", True), ("restore", True)]


def test_restore_reports_which_phase_all_hosts_match(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """When every host reads back the same phase, the report names it (for the ledger)."""
    set_phase(fleet, playbook, 2)
    taken = take_backup(ex, "inv", playbook, hosts, root, 2, clock=at())
    set_phase(fleet, playbook, 3)
    assert restore_backup(ex, taken, hosts, restore_state=False).phase == 2


def test_absent_flags_cannot_be_restored_and_are_reported(
    ex: Executor,
    fleet: FakeBackend,
    playbook: Playbook,
    hosts: tuple[Host, ...],
    root: Path,
    events: Collector,
) -> None:
    """A flag absent in the backup is not applied; if the host now holds it, that is reported."""
    del fleet.fakes["h1"].flags["use_v2_coordinator"]
    taken = take_backup(ex, "inv", playbook, hosts, root, None, clock=at())
    assert taken.host("h1").flags["use_v2_coordinator"] is None
    fleet.fakes["h1"].flags["use_v2_coordinator"] = 50
    report = restore_backup(ex, taken, hosts, restore_state=False)
    h1 = report.results[0]
    assert h1.ok and not h1.exact
    assert h1.unrestorable == (("use_v2_coordinator", "absent in the backup"),)
    warnings = [e for e in events.of(Kind.WARNING) if e.host == "h1"]
    assert "use_v2_coordinator (absent in the backup)" in warnings[0].message


def test_restore_that_does_not_read_back_fails(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """A host whose setters change nothing fails the restore (exit 6) naming the flags."""
    set_phase(fleet, playbook, 2)
    taken = take_backup(ex, "inv", playbook, hosts, root, 2, clock=at())
    set_phase(fleet, playbook, 0)
    fleet.fakes["h2"].apply_ignored = True
    with pytest.raises(RestoreIncomplete, match="h2: read back differs") as caught:
        restore_backup(ex, taken, hosts, restore_state=False)
    assert caught.value.exit_code == 6
    assert [r.ok for r in caught.value.report.results] == [True, False]


def test_restore_refuses_hosts_the_backup_does_not_hold(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """Restoring a host missing from (or failed in) the backup is refused before any change."""
    taken = take_backup(ex, "inv", playbook, hosts[:1], root, 1, clock=at())
    with pytest.raises(UsageError, match="h2 is not in it"):
        restore_backup(ex, taken, hosts, restore_state=False)
    assert fleet.fakes["h1"].applies == 0


def test_state_files_round_trip_and_extra_files_are_reported(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """restore_state puts every archived file back byte for byte; newer files are left, listed."""
    taken = take_backup(ex, "inv", playbook, hosts, root, 1, clock=at())
    original = dict(fleet.fakes["h1"].files)
    fleet.fakes["h1"].files[f"{STATE}/db.bin"] = b"changed"
    fleet.fakes["h1"].files[f"{STATE}/new"] = b"new"
    remote.UPLOAD_CHUNK, saved = 16, remote.UPLOAD_CHUNK  # force a multi-chunk upload
    try:
        report = restore_backup(ex, taken, hosts, restore_state=True)
    finally:
        remote.UPLOAD_CHUNK = saved
    uploads = [c for c in fleet.fakes["h1"].commands if c[2:3] == (remote.APPEND_SCRIPT,)]
    assert len(uploads) > 1  # the shrunken chunk size took effect
    files = fleet.fakes["h1"].files
    assert files[f"{STATE}/db.bin"] == original[f"{STATE}/db.bin"]
    assert files[f"{STATE}/sub/log"] == original[f"{STATE}/sub/log"]
    assert "/tmp/tmp.upload" not in files
    state = report.results[0].state
    assert state is not None and state.ok and state.files == 2
    assert state.extra == ("srv/foundation/state/new",)


def test_restored_file_that_differs_fails_the_host(
    ex: Executor, fleet: FakeBackend, playbook: Playbook, hosts: tuple[Host, ...], root: Path
) -> None:
    """If a restored file's sha256 on the host differs from the archive, the host fails."""
    taken = take_backup(ex, "inv", playbook, hosts, root, 1, clock=at())

    def lossy(fake: FakeHost, argv: tuple[str, ...]) -> CommandResult:
        result = filesystem(fake, argv)
        if argv[2:3] == (remote.EXTRACT_SCRIPT,):
            fake.files[f"{STATE}/db.bin"] = b"not what was archived"
        return result

    fleet.fakes["h2"].handler = lossy
    with pytest.raises(RestoreIncomplete, match="h2: files differ: srv/foundation/state/db.bin"):
        restore_backup(ex, taken, hosts, restore_state=True)
    assert fleet.fakes["h2"].applies == 0  # flags are not touched after a failed state restore


def test_sha256sum_escaped_names_are_parsed() -> None:
    """sha256sum's escaped lines (backslash, newline in a name) map back to the real name."""
    digest = "a" * 64
    text = f"{digest}  plain\n\\{digest}  we\\nird\\\\name\n"
    assert remote.parse_sums(text) == {"plain": digest, "we\nird\\name": digest}


def test_backup_root_comes_from_option_env_or_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The root is the option, else $ROLLOUT_BACKUPS, else backups/ (as the runbook says)."""
    monkeypatch.delenv("ROLLOUT_BACKUPS", raising=False)
    assert backup.backups_root() == Path("backups")
    monkeypatch.setenv("ROLLOUT_BACKUPS", "/var/backups/rollout")
    assert backup.backups_root() == Path("/var/backups/rollout")
    assert backup.backups_root("elsewhere") == Path("elsewhere")
