"""The commands behind the tasks: load and validate inputs, lock, run, record, report.

Each command validates every input before it touches a host, runs inside a ledger run holding
the inventory's lock, and ends by raising the :mod:`rollout.errors` error that matches its
outcome (``tasks.py`` turns that into the exit code) or by returning a summary.

One module a concern: :mod:`.context` (options, the loaded inputs), :mod:`.running` (a run:
lock, lease, outcome; the fleet check), :mod:`.recording` (the recorded phase),
:mod:`.notifications`, :mod:`.phases` (phase arguments), and the commands: :mod:`.deploys`
(deploy, plan, check), :mod:`.monitoring` (monitor, the soak watcher), :mod:`.rollbacks`
(rollback, emergency), :mod:`.statusreport` (status), :mod:`.maintenance` (backup, restore,
restart), :mod:`.fleetrecord` (adopt, pause and resume, clearing a lease).

The package exports the commands the CLI (``tasks.py``) calls as ``commands.deploy(...)``;
everything else (and all code inside ``rollout``) imports from the module that defines it.
"""

from __future__ import annotations

from .deploys import check, deploy, make_plan
from .fleetrecord import adopt, clear_lease, set_pause
from .maintenance import backup, restart, restore
from .monitoring import monitor
from .phases import bad_phase, check_phase_arg, require_phase
from .rollbacks import emergency, rollback
from .statusreport import status

__all__ = [
    "adopt",
    "backup",
    "bad_phase",
    "check",
    "check_phase_arg",
    "clear_lease",
    "deploy",
    "emergency",
    "make_plan",
    "monitor",
    "require_phase",
    "restart",
    "restore",
    "rollback",
    "set_pause",
    "status",
]
