"""A notification as data, and its webhook body rendered through a template.

Pure (a template file in, bytes out): :mod:`rollout.notify` sends what this renders, and the
playbook loader renders :data:`SAMPLE` through a playbook's template (:func:`check_template`),
so a broken template is found when the playbook loads, not when a rollback needs it. Every
failure is a :class:`~rollout.errors.TemplateError` naming the template's file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from . import resources
from .errors import InputError, TemplateError
from .models import NotifyKind
from .templating import jinja_environment
from .yamlsrc import read_input

__all__ = ["SAMPLE", "TEMPLATES", "Notification", "check_template", "render_notification"]

TEMPLATES = resources.TEMPLATES


@dataclass(frozen=True)
class Notification:
    """Something an operator should hear about, as data; templates turn it into a message."""

    kind: NotifyKind
    inventory: str
    phase: int | None  # where the fleet was (None: unknown or never deployed)
    target_phase: int | None  # where it is going or went
    reason: str | None
    who: str
    summary: str
    hosts_failed: tuple[str, ...] = ()
    run_id: str | None = None

    def as_data(self) -> dict[str, Any]:
        """Plain JSON-able values: the template context and the ledger record."""
        return {
            "kind": self.kind.value,
            "inventory": self.inventory,
            "phase": self.phase,
            "target_phase": self.target_phase,
            "reason": self.reason,
            "who": self.who,
            "summary": self.summary,
            "hosts_failed": list(self.hosts_failed),
            "run_id": self.run_id,
        }


def _slack_escape(value: object) -> str:
    """Escape what Slack's mrkdwn reads as markup: ``&``, ``<`` and ``>`` (links, mentions)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tojson(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _environment(templates: Path) -> jinja2.Environment:
    return jinja_environment(
        templates,
        keep_trailing_newline=True,
        # plain JSON encoding (Jinja's own tojson targets HTML)
        filters={"tojson": _tojson, "slack": _slack_escape},
    )


def render_notification(
    notification: Notification, template: str, *, templates: Path = TEMPLATES
) -> bytes:
    """The webhook body for ``notification``; TemplateError if the template or its JSON is bad.

    Any failure inside the template (a syntax error, an undefined name, a ``TypeError`` from
    an expression such as ``n.hosts + 1``) is a TemplateError naming the file and line.
    """
    path = templates / template
    try:
        read_input(path, MAX_TEMPLATE_BYTES)  # a regular file: never a FIFO or a device
    except InputError as exc:
        if exc.message.endswith("no such file"):
            raise TemplateError(
                f"notification template {path} not found",
                hint="check notify.webhook.template in the playbook (relative to templates/)",
            ) from None
        raise TemplateError(exc.message, hint=exc.hint) from None
    try:
        text = _environment(templates).get_template(template).render(n=notification.as_data())
    except jinja2.TemplateNotFound:
        raise TemplateError(
            f"notification template {path} not found",
            hint="check notify.webhook.template in the playbook (relative to templates/)",
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {_where(exc, path)}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {exc.filename}:{exc.lineno}: {exc.message}") from None
    except Exception as exc:  # an expression failed while rendering: the template's bug
        raise TemplateError(
            f"template {_where(exc, path)}: {type(exc).__name__}: {exc}",
            hint="fix the expression at that line; values are in `n` (see docs/notifications.md)",
        ) from None
    try:
        json.loads(text)
    except ValueError as exc:
        raise TemplateError(
            f"template {template} did not render valid JSON: {exc}",
            hint="pass every value through `| tojson`; never build JSON by hand",
        ) from None
    return text.encode("utf-8")


#: The largest notification template read.
MAX_TEMPLATE_BYTES = 1_000_000


def _where(exc: BaseException, path: Path) -> str:
    """``path:line`` of the template line that raised ``exc`` (Jinja maps its frames back to
    template lines), or ``path`` alone."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{path}:{line}" if line is not None else str(path)


def check_template(template: str, *, templates: Path = TEMPLATES) -> None:
    """Render a sample notification through ``template``: TemplateError when it is broken."""
    render_notification(SAMPLE, template, templates=templates)


#: What a playbook's template is checked with: every field set, with quotes and markup.
SAMPLE = Notification(
    NotifyKind.DEPLOY_FINISH, "inventory", 1, 2, 'a "reason" <x>', "who", "summary", ("h",), "r-1"
)
