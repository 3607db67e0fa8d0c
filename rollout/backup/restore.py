"""Restoring a backup: flags applied and read back, state files uploaded, extracted and
re-checked on the host.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import CommandTimeout, HostError, RolloutError, TransportError, UsageError
from ..events import Kind
from ..executor import Executor
from ..flagvalues import manifest_flags
from ..fleet import each
from ..models import FlagState, FlagValue, Host, Observed, Opaque, same_value
from ..plan import Action
from . import remote
from .model import (
    Backup,
    HostArchive,
    HostBackup,
    RestoreIncomplete,
    RestoreReport,
    RestoreResult,
    StateCheck,
)
from .remote import (
    APPEND_SCRIPT,
    EXTRACT_SCRIPT,
    LIST_SCRIPT,
    TMP_PATH_RE,
    parse_sums,
    relative_path,
    run_command,
)
from .store import archive_files, check_archive


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
    outcomes = each(
        names, lambda n: _restore_host(ex, backup, backup.host(n), restore_state),
        connect=ex.connect_all,
    )  # fmt: skip
    results = [
        o.value if o.value is not None else RestoreResult(o.host, False, error=o.detail)
        for o in outcomes.values()
    ]
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
        {"backup": backup.id, "state": manifest_flags(restorable), "files": bool(archive)},
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
        {"flags": manifest_flags(flags), "mismatched": list(mismatched), "error": error},
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
    data = check_archive(file, archive)
    expected = archive_files(data, name)
    timeout = ex.playbook.policy.command_timeout
    made = run_command(ex, name, ["mktemp"], timeout)
    tmp = made.stdout.strip()
    if not made.ok or not TMP_PATH_RE.match(tmp):
        raise HostError(name, f"mktemp failed (exit {made.exit_status}): {made.tail()}")
    try:
        text = base64.b64encode(data).decode("ascii")
        size = remote.UPLOAD_CHUNK  # looked up here, so a test can shrink it
        for start in range(0, len(text), size):
            chunk = text[start : start + size]
            sent = run_command(
                ex, name, ["sh", "-c", APPEND_SCRIPT, "rollout-upload", tmp, chunk], timeout
            )
            if not sent.ok:
                raise HostError(name, f"uploading the archive failed: {sent.tail()}")
        argv = ["sh", "-c", EXTRACT_SCRIPT, "rollout-restore", tmp, archive.sha256]
        done = run_command(ex, name, argv, timeout)
    except HostError:
        with contextlib.suppress(HostError):
            ex.backend.run(name, ["rm", "-f", "--", tmp], timeout=timeout)
        raise
    if not done.ok:
        raise HostError(
            name, f"extracting the archive failed (exit {done.exit_status}): {done.tail()}"
        )
    relative = [relative_path(p, name) for p in archive.paths]
    listed = run_command(ex, name, ["sh", "-c", LIST_SCRIPT, "rollout-verify", *relative], timeout)
    found = parse_sums(listed.stdout)
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
            flags=manifest_flags(result.flags),
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
            flags=manifest_flags(result.flags),
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
