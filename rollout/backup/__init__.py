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

One module per concern, lowest first (docs/architecture.md: the engine layer):

* :mod:`.model`: what a backup is (manifest values, restore results, the two errors);
* :mod:`.remote`: the scripts that run on a host, and parsing what they print;
* :mod:`.store`: the local directory: manifests written atomically, read strictly, listed;
* :mod:`.take`: taking a backup; :mod:`.restore`: restoring one.
"""

from __future__ import annotations

from .model import Backup, BackupIncomplete, RestoreIncomplete, RestoreReport, backups_root
from .restore import restore_backup
from .store import latest_backup_after, list_backups, load_backup
from .take import take_backup

__all__ = [
    "Backup",
    "BackupIncomplete",
    "RestoreIncomplete",
    "RestoreReport",
    "backups_root",
    "latest_backup_after",
    "list_backups",
    "load_backup",
    "restore_backup",
    "take_backup",
]
