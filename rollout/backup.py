"""Backups: every host's flags and, where the inventory lists ``state_paths``, its state files.

A backup is one directory under the backup root, ``<root>/<inventory>/<id>/``, holding
``manifest.json`` and a ``<host>/state.tar.gz`` per host that has state paths. The id is the
UTC time it was taken (``20261123T034512Z``, ``-2`` appended on a clash). ``docs/backup.md``
documents the layout and every manifest field.

Nothing is stored that was not read back: flags come from the console's read-back, and each
archive's SHA-256 is computed on the host (over the very bytes it sent) and again here. A
backup that misses a host is written with ``complete: false`` and raises; it is never shown as
complete. Restoring applies the stored flags and reads them back, and re-checks every restored
state file's SHA-256 on the host against the archive's own contents.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import (
    CommandTimeout,
    HostError,
    HostsUnreachable,
    InputError,
    RollbackIncomplete,
    RolloutError,
    SourceLocation,
    TransportError,
    UsageError,
)
from .events import Kind
from .executor import Executor
from .fleet import run_parallel
from .models import FlagState, FlagValue, Host, Observed, Opaque, Playbook, same_value
from .plan import Action
from .transport.base import CommandResult

#: A backup id: the UTC time it was taken, with ``-N`` when that second was already taken.
ID_RE = re.compile(r"^\d{8}T\d{6}Z(?:-\d{1,3})?$")
#: Inventory names become directory names.
_DIR_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_TMP_PATH_RE = re.compile(r"^/[A-Za-z0-9._/-]+$")

FORMAT = 1
MANIFEST = "manifest.json"
ARCHIVE = "state.tar.gz"
#: Where backups live unless an option or ``$ROLLOUT_BACKUPS`` says otherwise (gitignored).
DEFAULT_ROOT = "backups"
#: Base64 characters sent per upload command. The whole remote command line reaches the
#: host's login shell as one argument, which Linux caps at 128 KiB (MAX_ARG_STRLEN).
UPLOAD_CHUNK = 64 * 1024
_MARK = "ROLLOUT-ARCHIVE/1"

#: Archives the state paths (relative to /, given as arguments) into a temp file, then
#: prints "ROLLOUT-ARCHIVE/1 <sha256> <size>" and the archive as one base64 line. The file
#: makes the checksum cover exactly the bytes sent, and tar's own exit status count.
ARCHIVE_SCRIPT = """set -eu
t=$(mktemp)
trap 'rm -f "$t"' EXIT
trap 'exit 143' HUP INT TERM
tar -C / -czf "$t" -- "$@"
sum=$(sha256sum < "$t")
size=$(wc -c < "$t")
printf '%s %s %s\\n' ROLLOUT-ARCHIVE/1 "${sum%% *}" $size
base64 -w0 < "$t"
"""

#: Appends one base64 chunk ($2) to the upload file ($1).
APPEND_SCRIPT = 'printf %s "$2" >> "$1"'

#: Decodes the uploaded base64 file ($1), checks the archive's SHA-256 against $2, extracts
#: it under /; the upload file is removed either way.
EXTRACT_SCRIPT = """set -eu
t=$(mktemp)
trap 'rm -f "$t" "$1"' EXIT
trap 'exit 143' HUP INT TERM
base64 -d < "$1" > "$t"
sum=$(sha256sum < "$t")
if [ "${sum%% *}" != "$2" ]; then
  echo "the uploaded archive's sha256 is ${sum%% *}, not $2" >&2
  exit 3
fi
tar -C / -xzf "$t"
"""

#: The SHA-256 of every regular file under the state paths (relative to /, as arguments).
LIST_SCRIPT = 'cd / && find "$@" -type f -exec sha256sum -- {} +'


class BackupIncomplete(HostsUnreachable):
    """Some hosts could not be backed up; the backup is kept, marked incomplete."""

    def __init__(self, message: str, backup: Backup, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.backup = backup


class RestoreIncomplete(RollbackIncomplete):
    """A restore did not verify on every host; ``report`` says what each host holds."""

    def __init__(self, message: str, report: RestoreReport, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


# -- what a backup is ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostArchive:
    """One host's state files as stored: the absolute paths archived and the archive file."""

    paths: tuple[str, ...]
    file: str  # relative to the backup directory: "<host>/state.tar.gz"
    sha256: str
    size: int


@dataclass(frozen=True)
class HostBackup:
    """One host's entry: what its node held, or why it could not be read."""

    host: str
    ok: bool
    node: str | None = None
    flags: Mapping[str, Observed] = field(default_factory=dict)
    archive: HostArchive | None = None
    error: str | None = None


@dataclass(frozen=True)
class BackupInfo:
    """A backup as listed: enough to choose one. ``problem`` when its manifest is unusable."""

    id: str
    inventory: str
    path: Path
    complete: bool
    taken_at: float | None = None
    recorded_phase: int | None = None
    who: str | None = None
    hosts: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class Backup:
    """A backup as loaded from (or just written to) its directory."""

    id: str
    inventory: str
    path: Path  # the backup's directory
    playbook: str
    recorded_phase: int | None
    run: str
    who: str
    taken_at: float
    complete: bool
    hosts: tuple[HostBackup, ...]

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    def host(self, name: str) -> HostBackup:
        for entry in self.hosts:
            if entry.host == name:
                return entry
        raise KeyError(name)

    @property
    def info(self) -> BackupInfo:
        return BackupInfo(
            self.id,
            self.inventory,
            self.path,
            self.complete,
            self.taken_at,
            self.recorded_phase,
            self.who,
            tuple(h.host for h in self.hosts if h.ok),
        )


def backups_root(given: str | None = None) -> Path:
    """The backup root: ``given``, else ``$ROLLOUT_BACKUPS``, else ``backups/``."""
    return Path(given or os.environ.get("ROLLOUT_BACKUPS") or DEFAULT_ROOT)


def format_id(when: float) -> str:
    """The backup id for a wall-clock time: ``YYYYMMDDTHHMMSSZ`` in UTC."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))


# -- taking a backup -------------------------------------------------------------------------


def take_backup(
    ex: Executor,
    inventory_name: str,
    playbook: Playbook,
    hosts: Sequence[Host],
    root: Path,
    recorded_phase: int | None,
    *,
    clock: Callable[[], float] = time.time,
) -> Backup:
    """Back up every host's flags and state files into a new directory under ``root``.

    Raises :class:`BackupIncomplete` (exit 5) after writing the manifest with
    ``complete: false`` when any host could not be read or archived.
    """
    if not hosts:
        raise UsageError("no hosts selected: nothing to back up")
    inv_dir = root / _fleet_dir(inventory_name)
    for host in hosts:
        _dir_name(host.name, "host name")
    relative = {h.name: tuple(_relative(p, h.name) for p in h.state_paths) for h in hosts}
    started = clock()
    backup_id, path = _allocate(inv_dir, started)
    base = Backup(
        backup_id,
        inventory_name,
        path,
        playbook.path,
        recorded_phase,
        ex.run.id,
        ex.run.who,
        started,
        False,
        (),
    )
    write_manifest(base)  # an interrupted backup leaves an incomplete manifest behind
    ex.emit(
        Kind.BACKUP,
        f"taking backup {backup_id} of {len(hosts)} host(s) into {path}",
        backup=backup_id,
        path=str(path),
        action="backup",
    )
    names = [h.name for h in hosts]
    unreachable = ex.connect_all(names)
    by_name = {h.name: h for h in hosts}
    timeout = playbook.policy.command_timeout

    def one(name: str) -> HostBackup:
        reading = ex.backend.console(name).read_flags()
        archive = None
        if relative[name]:
            archive = _fetch_archive(ex, by_name[name], relative[name], path, timeout)
        return HostBackup(name, True, reading.node, dict(reading.flags), archive)

    outcomes = run_parallel([n for n in names if n not in unreachable], one)
    entries: list[HostBackup] = []
    for name in names:
        outcome = outcomes.get(name)
        if name in unreachable:
            entries.append(HostBackup(name, False, error=unreachable[name].detail))
        elif outcome is not None and outcome.value is not None:
            entries.append(outcome.value)
        else:
            detail = outcome.error.detail if outcome and outcome.error else "no result"
            entries.append(HostBackup(name, False, error=detail))
    for entry in entries:
        _emit_entry(ex, backup_id, entry)
    failed = [e for e in entries if not e.ok]
    backup = replace(base, complete=not failed, hosts=tuple(entries))
    write_manifest(backup)
    if failed:
        ex.emit(
            Kind.BACKUP,
            f"backup {backup_id} is INCOMPLETE: {len(failed)} of {len(entries)} host(s) failed",
            ok=False,
            backup=backup_id,
            action="backup",
            failed=[e.host for e in failed],
        )
        raise BackupIncomplete(
            f"backup {backup_id} is INCOMPLETE (kept in {path}, marked incomplete): "
            + "; ".join(f"{e.host}: {e.error}" for e in failed),
            backup,
            hint="fix those hosts and take a new backup, or leave them out with --limit",
        )
    ex.emit(
        Kind.BACKUP,
        f"backup {backup_id} complete: {len(entries)} host(s) in {path}",
        ok=True,
        backup=backup_id,
        action="backup",
        path=str(path),
    )
    return backup


def _emit_entry(ex: Executor, backup_id: str, entry: HostBackup) -> None:
    if not entry.ok:
        ex.emit(
            Kind.BACKUP,
            f"not backed up: {entry.error}",
            host=entry.host,
            ok=False,
            backup=backup_id,
            action="backup",
        )
        return
    state = ""
    if entry.archive is not None:
        state = f" and state ({entry.archive.size} bytes, sha256 {entry.archive.sha256[:12]})"
    ex.emit(
        Kind.BACKUP,
        f"backed up flags{state}",
        host=entry.host,
        ok=True,
        backup=backup_id,
        action="backup",
        flags=_flags_json(entry.flags),
        archive=entry.archive.file if entry.archive else None,
    )


def _fetch_archive(
    ex: Executor, host: Host, relative: tuple[str, ...], dest: Path, timeout: float
) -> HostArchive:
    """Stream a tar of the host's state paths, check it against the host's checksum, store it."""
    argv = ["sh", "-c", ARCHIVE_SCRIPT, "rollout-backup", *relative]
    result = _run(ex, host.name, argv, timeout)
    if not result.ok:
        raise HostError(
            host.name,
            f"archiving state_paths failed (exit {result.exit_status}): {result.tail()}",
            hint="check that every state_paths entry exists and is readable by the SSH user",
        )
    head, _, body = result.stdout.partition("\n")
    parts = head.split()
    if len(parts) != 3 or parts[0] != _MARK or not _SHA256_RE.match(parts[1]):
        raise HostError(host.name, f"the archive command printed no header: {head[:80]!r}")
    remote_sum, size_text = parts[1], parts[2]
    try:
        data = base64.b64decode(body.strip(), validate=True)
        size = int(size_text)
    except (binascii.Error, ValueError):
        raise HostError(host.name, "the archive did not arrive as base64") from None
    local_sum = hashlib.sha256(data).hexdigest()
    if local_sum != remote_sum or len(data) != size:
        raise HostError(
            host.name,
            f"the archive read back differs from what the host produced: sha256 {local_sum} "
            f"({len(data)} bytes) here, {remote_sum} ({size} bytes) on the host",
            hint="re-run the backup; if it persists, the connection corrupts data",
        )
    _archive_files(data, host.name)  # a backup we could not restore is no backup
    host_dir = dest / host.name
    host_dir.mkdir(mode=0o700, exist_ok=True)
    _write_atomically(host_dir / ARCHIVE, data)
    return HostArchive(host.state_paths, f"{host.name}/{ARCHIVE}", local_sum, len(data))


# -- the manifest ----------------------------------------------------------------------------


def write_manifest(backup: Backup) -> None:
    """Write ``manifest.json`` atomically (readers see the old or the new file, never half)."""
    data: dict[str, Any] = {
        "format": FORMAT,
        "id": backup.id,
        "inventory": backup.inventory,
        "playbook": backup.playbook,
        "recorded_phase": backup.recorded_phase,
        "run": backup.run,
        "who": backup.who,
        "taken_at": backup.taken_at,
        "taken_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(backup.taken_at)),
        "complete": backup.complete,
        "hosts": {e.host: _entry_json(e) for e in backup.hosts},
    }
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    _write_atomically(backup.manifest, text.encode("utf-8"))


def _entry_json(entry: HostBackup) -> dict[str, Any]:
    archive = None
    if entry.archive is not None:
        archive = {
            "paths": list(entry.archive.paths),
            "file": entry.archive.file,
            "sha256": entry.archive.sha256,
            "size": entry.archive.size,
        }
    return {
        "ok": entry.ok,
        "node": entry.node,
        "flags": _flags_json(entry.flags),
        "state": archive,
        "error": entry.error,
    }


def _flags_json(flags: Mapping[str, Observed]) -> dict[str, object]:
    """Values as JSON: booleans and integers as such, absent as null, opaque as an object."""
    out: dict[str, object] = {}
    for name, value in sorted(flags.items()):
        out[name] = {"opaque": value.text} if isinstance(value, Opaque) else value
    return out


class _Manifest:
    """Strict reading of one manifest: every problem names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, message: str, key: str | None = None) -> InputError:
        return InputError(
            message,
            location=SourceLocation(str(self.path), key=key),
            hint="pick another backup (`invoke backups` lists them) or take a new one",
        )

    def get(self, data: Mapping[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
        if key not in data:
            raise self.fail(f"missing {key!r}", where)
        value = data[key]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(f"{key!r} must be {names}, got {value!r}", where)
        return value

    def flags(self, raw: Any, where: str) -> dict[str, Observed]:
        if not isinstance(raw, dict):
            raise self.fail("flags must be an object", where)
        out: dict[str, Observed] = {}
        for name, value in raw.items():
            key = f"{where}.{name}"
            if value is None or isinstance(value, (bool, int)):
                out[name] = value
            elif isinstance(value, dict) and set(value) == {"opaque"}:
                out[name] = Opaque(str(value["opaque"]))
            else:
                raise self.fail(f"flag value {value!r} is not a boolean, integer or null", key)
        return out


def load_backup(root: Path, inventory: str, backup_id: str, *, verify: bool = True) -> Backup:
    """Load and validate a backup; with ``verify``, every archive's size and SHA-256 too.

    A missing or malformed manifest, or an archive that is missing or differs from its
    recorded checksum, is an :class:`InputError` naming the file.
    """
    if not ID_RE.match(backup_id):
        raise UsageError(
            f"{backup_id!r} is not a backup id (like 20261123T034512Z)",
            hint="`invoke backups` lists the backups of this inventory",
        )
    path = root / _fleet_dir(inventory) / backup_id
    m = _Manifest(path / MANIFEST)
    try:
        data = json.loads(m.path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        where = "no such backup" if not path.exists() else "no manifest (the backup never ran)"
        raise m.fail(where) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise m.fail(f"not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise m.fail("the manifest is not a JSON object")
    if m.get(data, "format", (int,), "format") != FORMAT:
        raise m.fail(f"unknown format {data['format']!r} (this tool reads {FORMAT})", "format")
    if m.get(data, "id", (str,), "id") != backup_id:
        raise m.fail(f"the manifest is for backup {data['id']!r}, not {backup_id!r}", "id")
    if m.get(data, "inventory", (str,), "inventory") != inventory:
        raise m.fail(f"the manifest is for inventory {data['inventory']!r}", "inventory")
    phase = data.get("recorded_phase")
    if phase is not None and (not isinstance(phase, int) or isinstance(phase, bool)):
        raise m.fail(f"'recorded_phase' must be an integer or null, got {phase!r}")
    hosts_raw = m.get(data, "hosts", (dict,), "hosts")
    entries = []
    for name, raw in hosts_raw.items():
        where = f"hosts.{name}"
        if not isinstance(raw, dict):
            raise m.fail("a host entry must be an object", where)
        entries.append(_load_entry(m, path, name, raw, where, verify))
    complete = m.get(data, "complete", (bool,), "complete")
    if complete and not all(e.ok for e in entries):
        raise m.fail("marked complete, but a host entry failed", "complete")
    return Backup(
        backup_id,
        inventory,
        path,
        m.get(data, "playbook", (str,), "playbook"),
        phase,
        m.get(data, "run", (str,), "run"),
        m.get(data, "who", (str,), "who"),
        float(m.get(data, "taken_at", (int, float), "taken_at")),
        complete,
        tuple(entries),
    )


def _load_entry(
    m: _Manifest, path: Path, name: str, raw: Mapping[str, Any], where: str, verify: bool
) -> HostBackup:
    if not _DIR_NAME_RE.match(name):
        raise m.fail(f"host name {name!r} is not a plain name", where)
    ok = m.get(raw, "ok", (bool,), where)
    error = raw.get("error")
    if not ok:
        return HostBackup(name, False, error=str(error) if error is not None else "failed")
    node = m.get(raw, "node", (str,), where)
    flags = m.flags(raw.get("flags"), f"{where}.flags")
    state = raw.get("state")
    archive = None
    if state is not None:
        skey = f"{where}.state"
        if not isinstance(state, dict):
            raise m.fail("state must be an object or null", skey)
        paths = m.get(state, "paths", (list,), skey)
        if not paths or not all(isinstance(p, str) for p in paths):
            raise m.fail("state.paths must be a non-empty list of paths", skey)
        for p in paths:
            _relative(p, name)
        archive = HostArchive(
            tuple(paths),
            m.get(state, "file", (str,), skey),
            m.get(state, "sha256", (str,), skey),
            m.get(state, "size", (int,), skey),
        )
        if archive.file != f"{name}/{ARCHIVE}":
            raise m.fail(f"unexpected archive file {archive.file!r}", skey)
        if not _SHA256_RE.match(archive.sha256):
            raise m.fail("sha256 must be 64 lower-case hex digits", skey)
        if verify:
            _check_archive(path / archive.file, archive)
    return HostBackup(name, True, node, flags, archive)


def _check_archive(file: Path, archive: HostArchive) -> bytes:
    def fail(message: str) -> InputError:
        return InputError(
            message,
            location=SourceLocation(str(file)),
            hint="the backup is damaged: pick another one or take a new backup",
        )

    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read the archive: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != archive.size or digest != archive.sha256:
        raise fail(
            f"checksum mismatch: sha256 {digest} ({len(data)} bytes), the manifest records "
            f"{archive.sha256} ({archive.size} bytes)"
        )
    return data


def list_backups(root: Path, inventory: str) -> list[BackupInfo]:
    """Every backup of ``inventory``, oldest first; unusable ones carry a ``problem``.

    Only manifests are read here (archives are checked by :func:`load_backup`).
    """
    inv_dir = root / _fleet_dir(inventory)
    if not inv_dir.is_dir():
        return []
    out = []
    for path in sorted((p for p in inv_dir.iterdir() if ID_RE.match(p.name)), key=_id_key):
        try:
            out.append(load_backup(root, inventory, path.name, verify=False).info)
        except InputError as exc:
            out.append(BackupInfo(path.name, inventory, path, False, problem=exc.message))
    return out


def latest_backup_after(
    root: Path,
    inventory: str,
    since: float | None,
    *,
    hosts: Collection[str] | None = None,
) -> BackupInfo | None:
    """The newest complete, verified backup taken after ``since`` (None: any), or None.

    With ``hosts``, the backup must cover each of them. This is the ``gates.backup`` check:
    ``since`` is the ledger's ``InventoryState.phase_changed``.
    """
    for info in reversed(list_backups(root, inventory)):
        if not info.complete or info.taken_at is None:
            continue
        if since is not None and info.taken_at <= since:
            break
        if hosts is not None and not set(hosts) <= set(info.hosts):
            continue
        try:
            load_backup(root, inventory, info.id)  # its archives must still match
        except InputError:
            continue
        return info
    return None


# -- restoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateCheck:
    """The restored state files compared with the archive's own contents."""

    files: int  # regular files in the archive
    differing: tuple[str, ...] = ()  # missing on the host, or different content
    extra: tuple[str, ...] = ()  # under the state paths on the host, not in the backup

    @property
    def ok(self) -> bool:
        return not self.differing


@dataclass(frozen=True)
class RestoreResult:
    """One host after a restore: its read-back and what could not be put back."""

    host: str
    ok: bool
    flags: Mapping[str, Observed] = field(default_factory=dict)
    mismatched: tuple[str, ...] = ()  # restorable flags whose read-back differs
    unrestorable: tuple[tuple[str, str], ...] = ()  # (flag, why) not applied: left as is
    differs: tuple[str, ...] = ()  # unrestorable flags whose read-back differs from the backup
    state: StateCheck | None = None
    error: str | None = None

    @property
    def exact(self) -> bool:
        """Every flag of the backup and the playbook reads back as the backup recorded it."""
        return self.ok and not self.differs


@dataclass(frozen=True)
class RestoreReport:
    backup: str
    results: tuple[RestoreResult, ...]
    phase: int | None  # the phase every host's read-back matches, when they all agree

    @property
    def failed(self) -> tuple[RestoreResult, ...]:
        return tuple(r for r in self.results if not r.ok)


def restore_backup(
    ex: Executor,
    backup: Backup,
    hosts: Sequence[Host],
    *,
    restore_state: bool,
) -> RestoreReport:
    """Put each host's backed-up flags (and, with ``restore_state``, state files) back.

    Refuses (UsageError, nothing touched) when a selected host has no usable entry in the
    backup. Raises :class:`RestoreIncomplete` (exit 6) when a host did not verify.
    """
    missing = []
    for host in hosts:
        try:
            entry = backup.host(host.name)
        except KeyError:
            missing.append(f"{host.name} is not in it")
            continue
        if not entry.ok:
            missing.append(f"{host.name} failed in it ({entry.error})")
    if missing:
        raise UsageError(
            f"backup {backup.id} cannot restore every selected host: " + "; ".join(missing),
            hint="pick another backup (`invoke backups`), or leave those hosts out with --limit",
        )
    if backup.playbook != ex.playbook.path:
        ex.emit(
            Kind.WARNING,
            f"backup {backup.id} was taken with playbook {backup.playbook}; restoring the "
            f"flags {ex.playbook.path} knows",
        )
    ex.emit(
        Kind.BACKUP,
        f"restoring backup {backup.id} to {len(hosts)} host(s)"
        + (" (flags and state files)" if restore_state else " (flags only)"),
        backup=backup.id,
        action="restore",
        state=restore_state,
    )
    names = [h.name for h in hosts]
    unreachable = ex.connect_all(names) if names else {}
    outcomes = run_parallel(
        [n for n in names if n not in unreachable],
        lambda n: _restore_host(ex, backup, backup.host(n), restore_state),
    )
    results = []
    for name in names:
        outcome = outcomes.get(name)
        if name in unreachable:
            results.append(RestoreResult(name, False, error=unreachable[name].detail))
        elif outcome is not None and outcome.value is not None:
            results.append(outcome.value)
        else:
            detail = outcome.error.detail if outcome and outcome.error else "no result"
            results.append(RestoreResult(name, False, error=detail))
    for result in results:
        _emit_restore(ex, backup.id, result)
    matches = {ex.playbook.match(r.flags) for r in results}
    report = RestoreReport(backup.id, tuple(results), matches.pop() if len(matches) == 1 else None)
    if report.failed:
        raise RestoreIncomplete(
            f"restore of backup {backup.id} is INCOMPLETE: "
            + "; ".join(f"{r.host}: {_why(r)}" for r in report.failed),
            report,
            hint=f"fix those hosts, then re-run `invoke restore --backup {backup.id}`",
        )
    return report


def _restore_host(
    ex: Executor, backup: Backup, entry: HostBackup, restore_state: bool
) -> RestoreResult:
    name = entry.host
    allow = set(ex.playbook.flags)
    restorable: dict[str, FlagValue] = {}
    unrestorable: list[tuple[str, str]] = []
    for flag, value in sorted(entry.flags.items()):
        if flag not in allow:
            unrestorable.append((flag, "not in the playbook's flags"))
        elif value is None:
            unrestorable.append((flag, "absent in the backup"))
        elif isinstance(value, Opaque):
            unrestorable.append((flag, f"held {value.text} in the backup"))
        elif isinstance(value, int) and not isinstance(value, bool) and not 1 <= value <= 100:
            unrestorable.append((flag, f"held {value} in the backup (not 1..100)"))
        else:
            restorable[flag] = value
    unrestorable += [(f, "not in the backup") for f in sorted(allow - set(entry.flags))]
    archive = entry.archive if restore_state else None
    intent = ex.ledger.intent(
        ex.run.id,
        name,
        Action.RESTORE.value,
        backup.recorded_phase,
        {"backup": backup.id, "state": _flags_json(restorable), "files": bool(archive)},
    )
    check = None
    error = None
    flags: Mapping[str, Observed] = {}
    mismatched: tuple[str, ...] = ()
    try:
        if archive is not None:
            check = _restore_state(ex, name, backup.path / archive.file, archive)
        if check is None or check.ok:
            flags, errors = _apply(ex, name, FlagState.of(restorable))
            mismatched = tuple(c.flag for c in FlagState.of(restorable).changes_from(flags))
            if errors:
                error = "; ".join(f"{f} replied {r}" for f, r in errors.items())
    except RolloutError as exc:
        error = exc.detail if isinstance(exc, HostError) else exc.message
    # an unrestorable flag is still exact when the host happens to hold the backed-up value
    differs = tuple(
        f
        for f, _ in unrestorable
        if not (f in entry.flags and f in flags and same_value(flags[f], entry.flags[f]))
    )
    state_ok = check is None or check.ok  # when state differs, flags are not touched
    ok = error is None and state_ok and not mismatched and bool(flags)
    result = RestoreResult(name, ok, flags, mismatched, tuple(unrestorable), differs, check, error)
    ex.ledger.settle(
        intent.id,
        ok,
        {"flags": _flags_json(flags), "mismatched": list(mismatched), "error": error},
    )
    return result


def _apply(
    ex: Executor, name: str, state: FlagState
) -> tuple[Mapping[str, Observed], Mapping[str, str]]:
    """Apply; when its outcome is unknown (timeout, lost connection), read the host back."""
    try:
        applied = ex.backend.console(name).apply(state)
        return applied.reading.flags, applied.errors
    except (CommandTimeout, TransportError):
        ex.backend.reset(name)
    return ex.backend.console(name).read_flags().flags, {}


def _restore_state(ex: Executor, name: str, file: Path, archive: HostArchive) -> StateCheck:
    """Upload the archive, extract it under /, then compare each file's SHA-256 on the host."""
    data = _check_archive(file, archive)
    expected = _archive_files(data, name)
    timeout = ex.playbook.policy.command_timeout
    made = _run(ex, name, ["mktemp"], timeout)
    tmp = made.stdout.strip()
    if not made.ok or not _TMP_PATH_RE.match(tmp):
        raise HostError(name, f"mktemp failed (exit {made.exit_status}): {made.tail()}")
    try:
        text = base64.b64encode(data).decode("ascii")
        for start in range(0, len(text), UPLOAD_CHUNK):
            chunk = text[start : start + UPLOAD_CHUNK]
            sent = _run(
                ex, name, ["sh", "-c", APPEND_SCRIPT, "rollout-upload", tmp, chunk], timeout
            )
            if not sent.ok:
                raise HostError(name, f"uploading the archive failed: {sent.tail()}")
        argv = ["sh", "-c", EXTRACT_SCRIPT, "rollout-restore", tmp, archive.sha256]
        done = _run(ex, name, argv, timeout)
    except HostError:
        with contextlib.suppress(HostError):
            ex.backend.run(name, ["rm", "-f", "--", tmp], timeout=timeout)
        raise
    if not done.ok:
        raise HostError(
            name, f"extracting the archive failed (exit {done.exit_status}): {done.tail()}"
        )
    relative = [_relative(p, name) for p in archive.paths]
    listed = _run(ex, name, ["sh", "-c", LIST_SCRIPT, "rollout-verify", *relative], timeout)
    found = _parse_sums(listed.stdout)
    if not listed.ok and not found:
        raise HostError(name, f"listing the restored files failed: {listed.tail()}")
    differing = tuple(sorted(p for p, s in expected.items() if found.get(p) != s))
    extra = tuple(sorted(set(found) - set(expected)))
    check = StateCheck(len(expected), differing, extra)
    ex.emit(
        Kind.BACKUP,
        f"state files restored: {check.files - len(differing)} of {check.files} verified"
        + (f"; {len(extra)} file(s) not in the backup were left in place" if extra else ""),
        host=name,
        ok=check.ok,
        action="restore",
        differing=list(differing),
        extra=list(extra),
    )
    return check


def _emit_restore(ex: Executor, backup_id: str, result: RestoreResult) -> None:
    if result.ok:
        ex.emit(
            Kind.BACKUP,
            f"restored from backup {backup_id} and verified",
            host=result.host,
            ok=True,
            backup=backup_id,
            action="restore",
            flags=_flags_json(result.flags),
            unrestorable=[flag for flag, _ in result.unrestorable],
        )
    else:
        ex.emit(
            Kind.BACKUP,
            f"restore from backup {backup_id} failed: {_why(result)}",
            host=result.host,
            ok=False,
            backup=backup_id,
            action="restore",
            flags=_flags_json(result.flags),
            mismatched=list(result.mismatched),
            error=result.error,
        )
    if result.differs:
        ex.emit(
            Kind.WARNING,
            "could not restore, and the host now holds something else: "
            + ", ".join(f"{f} ({why})" for f, why in result.unrestorable if f in result.differs),
            host=result.host,
            unrestorable=list(result.differs),
        )


def _why(result: RestoreResult) -> str:
    parts = []
    if result.mismatched:
        parts.append("read back differs: " + ", ".join(result.mismatched))
    if result.state is not None and result.state.differing:
        parts.append("files differ: " + ", ".join(result.state.differing[:5]))
    if result.error:
        parts.append(result.error)
    return "; ".join(parts) or "failed"


# -- helpers ---------------------------------------------------------------------------------


def _run(ex: Executor, name: str, argv: Sequence[str], timeout: float) -> CommandResult:
    result = ex.backend.run(name, argv, timeout=timeout)
    if result.timed_out:
        raise CommandTimeout(name, f"{argv[0]} did not finish within {timeout:.0f}s")
    return result


def _relative(path: str, host: str) -> str:
    """A state path made relative to / for ``tar -C /``; refuses '..' and anything odd."""
    parts = path.split("/")
    if not path.startswith("/") or ".." in parts or not path.strip("/"):
        raise UsageError(
            f"state path {path!r} of host {host} must be an absolute path below / with no '..'",
            hint="fix state_paths in the inventory",
        )
    return "/".join(p for p in parts if p and p != ".")


def _archive_files(data: bytes, host: str) -> dict[str, str]:
    """Regular files in a tar.gz (name relative to /) -> SHA-256; refuses unsafe members."""
    out: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                name = member.name.rstrip("/")
                if name.startswith("/") or ".." in name.split("/"):
                    raise HostError(host, f"the archive holds an unsafe member {member.name!r}")
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    out[name] = hashlib.sha256(handle.read()).hexdigest()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise HostError(host, f"the archive is not a readable tar.gz: {exc}") from None
    return out


def _parse_sums(text: str) -> dict[str, str]:
    """``sha256sum`` lines -> {path: digest}; undoes its escaping of \\ and newlines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        escaped = line.startswith("\\")
        if escaped:
            line = line[1:]
        digest, sep, name = line.partition("  ")
        if not sep or not _SHA256_RE.match(digest):
            continue
        if escaped:
            name = re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r"}.get(m[1], m[1]), name)
        out[name] = digest
    return out


def _fleet_dir(fleet: str) -> str:
    """The directory of a fleet's backups: its name when that is a plain name, else (a path
    such as ``inventory/eu/prod.yml``) a readable tail and a hash, so fleets never share one."""
    if _DIR_NAME_RE.match(fleet) and len(fleet) <= 64:
        return fleet
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", fleet).strip("._-")[-40:] or "fleet"
    return f"{tail}-{hashlib.sha256(fleet.encode('utf-8')).hexdigest()[:12]}"


def _dir_name(text: str, what: str) -> str:
    if not _DIR_NAME_RE.match(text):
        raise UsageError(f"{what} {text!r} cannot name a backup directory")
    return text


def _id_key(path: Path) -> tuple[str, int]:
    base, _, n = path.name.partition("-")
    return base, int(n or 1)


def _allocate(inv_dir: Path, when: float) -> tuple[str, Path]:
    """Claim a fresh backup directory (mkdir is atomic, so two runs never share one)."""
    inv_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    base = format_id(when)
    for n in range(1, 1000):
        backup_id = base if n == 1 else f"{base}-{n}"
        try:
            (inv_dir / backup_id).mkdir(mode=0o700)
        except FileExistsError:
            continue
        return backup_id, inv_dir / backup_id
    raise UsageError(f"too many backups in {inv_dir} for {base}")


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
