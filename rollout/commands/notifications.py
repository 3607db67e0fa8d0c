"""A run's notifications (``rollout.notify``, one notifier a run): a webhook that fails or
is not configured is a warning in the run's events, never the run's failure."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ..errors import RolloutError
from ..events import Kind
from ..executor import Executor
from ..models import NotifyKind
from .context import Context


def notify(
    ctx: Context,
    ex: Executor,
    kind: NotifyKind,
    phase: int | None,
    target: int | None,
    summary: str,
    *,
    reason: str | None = None,
    failed: Sequence[str] = (),
) -> None:
    """Send a notification; it never raises and never waits longer than its timeout."""
    from ..notify import Notification, Notifier

    try:
        notifier = ctx.notifiers.get(ex.run.id)
        if notifier is None:  # one per run, so "no webhook configured" is said once
            notifier = Notifier(
                ctx.playbook.notify, ctx.emit, lambda k, d: ctx.ledger.event(ex.run.id, k, d),
                clock=ctx.clock,
            )
            ctx.notifiers[ex.run.id] = notifier
        notifier.send(
            Notification(
                kind,
                ctx.inventory.name,
                phase,
                target,
                reason,
                ex.run.who,
                summary,
                tuple(failed),
                ex.run.id,
            )
        )
    except RolloutError as exc:
        _side_warning(ex, f"notification not sent: {exc.message}")
    except Exception as exc:  # a side output never aborts a run nor keeps it from recording
        _side_warning(ex, f"notification not sent: {type(exc).__name__}: {exc}")


def _side_warning(ex: Executor, message: str) -> None:
    with contextlib.suppress(Exception):  # even a warning about a side output must not abort
        ex.emit(Kind.WARNING, message)
