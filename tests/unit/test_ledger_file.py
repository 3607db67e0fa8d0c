"""The SQLite ledger file itself: created 0600, refused when it cannot be a ledger, and
watched during a run (deleted or replaced: loud failure, never a write into the void)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rollout.database import LedgerFileError, LedgerUnavailable
from rollout.errors import ExitCode
from rollout.ledger import Ledger, RunStatus

REPO = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_new_ledger_and_its_journal_files_are_0600(tmp_path: Path) -> None:
    """Even under a permissive umask, the ledger, its -wal and its -shm are owner-only."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "l" / "ledger.db"
        with Ledger(path) as ledger:
            ledger.event(ledger.start_run("prod", "deploy", ["deploy"]).id, "note")
            files = sorted(p.name for p in path.parent.iterdir())
            assert files == ["ledger.db", "ledger.db-shm", "ledger.db-wal"]
            assert {p.name: _mode(p) for p in path.parent.iterdir()} == dict.fromkeys(files, 0o600)
    finally:
        os.umask(old)


def test_a_world_readable_ledger_is_tightened_on_open(tmp_path: Path) -> None:
    """A ledger an older tool left 0644 is made 0600 the next time it is opened."""
    path = tmp_path / "ledger.db"
    Ledger(path).close()
    path.chmod(0o644)
    Ledger(path).close()
    assert _mode(path) == 0o600


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
        (lambda p: p.write_bytes(os.urandom(8192)), "not a readable SQLite ledger"),
    ],
    ids=["directory", "empty", "garbage"],
)
def test_a_path_that_cannot_be_a_ledger_is_an_input_error(
    tmp_path: Path, make: object, says: str
) -> None:
    """A directory, a 0-byte file or garbage is a clear exit-2 error naming the path and what
    to do, and the file is left exactly as it was (no silent fresh ledger)."""
    path = tmp_path / "ledger.db"
    make(path)  # type: ignore[operator]
    before = path.read_bytes() if path.is_file() else None
    with pytest.raises(LedgerFileError, match=says) as caught:
        Ledger(path)
    assert caught.value.exit_code is ExitCode.BAD_INPUT
    assert str(path) in caught.value.message and caught.value.hint
    assert (path.read_bytes() if path.is_file() else None) == before


def test_page_level_corruption_is_found_at_open(tmp_path: Path) -> None:
    """A ledger with a valid header but damaged pages fails its integrity check at open."""
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        run = ledger.start_run("prod", "deploy", ["deploy"])
        for n in range(300):
            ledger.event(run.id, "note", {"n": n, "pad": "x" * 200})
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[3 * page : 5 * page] = os.urandom(2 * page)
    path.write_bytes(bytes(data))
    with pytest.raises(LedgerFileError, match="not a readable SQLite ledger"):
        Ledger(path)


def test_a_ledger_deleted_during_a_run_fails_loudly(tmp_path: Path) -> None:
    """Once the file is unlinked, the next write raises instead of journaling into the void,
    and no new intent (host change) can start."""
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger:
        run = ledger.start_run("prod", "deploy", ["deploy"])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink()
        with pytest.raises(LedgerUnavailable, match="was deleted during this run"):
            ledger.set_phase("prod", 1, run.id, soak_required=60)
        with pytest.raises(LedgerUnavailable, match="set_flags on web-1 is not started"):
            ledger.intent(run.id, "web-1", "set_flags", 2, {})


def test_a_ledger_replaced_during_a_run_fails_loudly(tmp_path: Path) -> None:
    """A different file moved over the ledger's path is detected at the next write."""
    path = tmp_path / "ledger.db"
    Ledger(tmp_path / "other.db").close()
    with Ledger(path) as ledger:
        run = ledger.start_run("prod", "deploy", ["deploy"])
        os.replace(tmp_path / "other.db", path)
        with pytest.raises(LedgerUnavailable, match="was replaced by another file"):
            ledger.finish_run(run.id, RunStatus.SUCCEEDED)


def test_the_cli_says_what_to_do_for_a_directory_ledger(tmp_path: Path) -> None:
    """`invoke history --ledger DIR` exits 2 with the path and a next step, no traceback."""
    (tmp_path / "dir").mkdir()
    inventory = REPO / "tests" / "data" / "inventory" / "same" / "site.yml"
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "history", "--inventory", str(inventory),
         "--ledger", str(tmp_path / "dir")],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "is a directory" in proc.stderr and "next: pass a file path" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
