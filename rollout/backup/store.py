"""The local store: ``<root>/<fleet>/<id>/manifest.json`` and one archive a host; written
atomically, read strictly, listed, and checked against their recorded SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..errors import HostError, InputError, SourceLocation, UsageError
from ..fields import has_kind
from ..flagvalues import BadFlagValue, from_manifest, manifest_flags
from ..models import Observed
from .model import (
    ARCHIVE,
    FORMAT,
    ID_RE,
    MANIFEST,
    SHA256_RE,
    Backup,
    BackupInfo,
    HostArchive,
    HostBackup,
    format_id,
)
from .remote import relative_path

#: Inventory names become directory names.
_DIR_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


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
    write_atomically(backup.manifest, text.encode("utf-8"))


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
        "flags": manifest_flags(entry.flags),
        "state": archive,
        "error": entry.error,
    }


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
        if not has_kind(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(f"{key!r} must be {names}, got {value!r}", where)
        return value

    def flags(self, raw: Any, where: str) -> dict[str, Observed]:
        try:
            return from_manifest(raw, where)
        except BadFlagValue as exc:
            raise self.fail(exc.message, exc.key) from None


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
    path = root / fleet_dir(inventory) / backup_id
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
            relative_path(p, name)
        archive = HostArchive(
            tuple(paths),
            m.get(state, "file", (str,), skey),
            m.get(state, "sha256", (str,), skey),
            m.get(state, "size", (int,), skey),
        )
        if archive.file != f"{name}/{ARCHIVE}":
            raise m.fail(f"unexpected archive file {archive.file!r}", skey)
        if not SHA256_RE.match(archive.sha256):
            raise m.fail("sha256 must be 64 lower-case hex digits", skey)
        if verify:
            check_archive(path / archive.file, archive)
    return HostBackup(name, True, node, flags, archive)


def check_archive(file: Path, archive: HostArchive) -> bytes:
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
    inv_dir = root / fleet_dir(inventory)
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


def archive_files(data: bytes, host: str) -> dict[str, str]:
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


def fleet_dir(fleet: str) -> str:
    """The directory of a fleet's backups: its name when that is a plain name, else (a path
    such as ``inventory/eu/prod.yml``) a readable tail and a hash, so fleets never share one."""
    if _DIR_NAME_RE.match(fleet) and len(fleet) <= 64:
        return fleet
    tail = re.sub(r"[^A-Za-z0-9._-]+", "_", fleet).strip("._-")[-40:] or "fleet"
    return f"{tail}-{hashlib.sha256(fleet.encode('utf-8')).hexdigest()[:12]}"


def dir_name(text: str, what: str) -> str:
    if not _DIR_NAME_RE.match(text):
        raise UsageError(f"{what} {text!r} cannot name a backup directory")
    return text


def _id_key(path: Path) -> tuple[str, int]:
    base, _, n = path.name.partition("-")
    return base, int(n or 1)


def allocate(inv_dir: Path, when: float) -> tuple[str, Path]:
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


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
