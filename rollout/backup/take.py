"""Taking a backup: every host's flags read back and its state files streamed and checked."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from ..clock import SYSTEM, Clock
from ..errors import HostError, UsageError
from ..events import Kind
from ..executor import Executor
from ..flagvalues import manifest_flags
from ..fleet import each
from ..models import Host, Playbook
from .model import ARCHIVE, SHA256_RE, Backup, BackupIncomplete, HostArchive, HostBackup
from .remote import ARCHIVE_SCRIPT, MARK, relative_path, run_command
from .store import (
    allocate,
    archive_files,
    dir_name,
    fleet_dir,
    write_atomically,
    write_manifest,
)


def take_backup(
    ex: Executor,
    inventory_name: str,
    playbook: Playbook,
    hosts: Sequence[Host],
    root: Path,
    recorded_phase: int | None,
    *,
    clock: Clock = SYSTEM,
) -> Backup:
    """Back up every host's flags and state files into a new directory under ``root``.

    Raises :class:`BackupIncomplete` (exit 5) after writing the manifest with
    ``complete: false`` when any host could not be read or archived.
    """
    if not hosts:
        raise UsageError("no hosts selected: nothing to back up")
    inv_dir = root / fleet_dir(inventory_name)
    for host in hosts:
        dir_name(host.name, "host name")
    relative = {h.name: tuple(relative_path(p, h.name) for p in h.state_paths) for h in hosts}
    started = clock.wall()
    backup_id, path = allocate(inv_dir, started)
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
    by_name = {h.name: h for h in hosts}
    timeout = playbook.policy.command_timeout

    def one(name: str) -> HostBackup:
        reading = ex.backend.console(name).read_flags()
        archive = None
        if relative[name]:
            archive = _fetch_archive(ex, by_name[name], relative[name], path, timeout)
        return HostBackup(name, True, reading.node, dict(reading.flags), archive)

    outcomes = each(names, one, connect=ex.connect_all)
    entries = [
        o.value if o.value is not None else HostBackup(o.host, False, error=o.detail)
        for o in outcomes.values()
    ]
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
        flags=manifest_flags(entry.flags),
        archive=entry.archive.file if entry.archive else None,
    )


def _fetch_archive(
    ex: Executor, host: Host, relative: tuple[str, ...], dest: Path, timeout: float
) -> HostArchive:
    """Stream a tar of the host's state paths, check it against the host's checksum, store it."""
    argv = ["sh", "-c", ARCHIVE_SCRIPT, "rollout-backup", *relative]
    result = run_command(ex, host.name, argv, timeout)
    if not result.ok:
        raise HostError(
            host.name,
            f"archiving state_paths failed (exit {result.exit_status}): {result.tail()}",
            hint="check that every state_paths entry exists and is readable by the SSH user",
        )
    head, _, body = result.stdout.partition("\n")
    parts = head.split()
    if len(parts) != 3 or parts[0] != MARK or not SHA256_RE.match(parts[1]):
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
    archive_files(data, host.name)  # a backup we could not restore is no backup
    host_dir = dest / host.name
    host_dir.mkdir(mode=0o700, exist_ok=True)
    write_atomically(host_dir / ARCHIVE, data)
    return HostArchive(host.state_paths, f"{host.name}/{ARCHIVE}", local_sum, len(data))
