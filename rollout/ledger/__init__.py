"""The durable journal: runs, events, intents, the current phase, the soak window and the lock.

The package's modules are being split per concern (issue 12); :mod:`.core` holds them all for
now. Importers use ``rollout.ledger``.
"""

from __future__ import annotations

from .core import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Approval,
    EventRecord,
    Intent,
    InventoryState,
    Ledger,
    LockRecord,
    RunRecord,
    RunStatus,
    WaveRecord,
    migrate,
    open_ledger,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Approval",
    "EventRecord",
    "Intent",
    "InventoryState",
    "Ledger",
    "LockRecord",
    "RunRecord",
    "RunStatus",
    "WaveRecord",
    "migrate",
    "open_ledger",
]
