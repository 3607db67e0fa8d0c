"""Optional capabilities plugged into the commands: gates, notifications, restarts.

Kept apart so ``commands`` does not import every subsystem, and so the CLI's start-up stays
light: each function imports what it needs when called.
"""

from __future__ import annotations

from typing import Any


def gates() -> tuple[Any, ...]:
    """Extra gate checks for ``advance`` (fresh backup, readiness checklist)."""
    return ()


def deploy_gates() -> tuple[Any, ...]:
    """Gate checks ``deploy`` applies before touching hosts (a fresh backup, where required)."""
    return ()
