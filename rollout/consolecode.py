"""The remote console's code and values: the templates it renders, the payload, the readings.

Pure apart from reading the shipped templates: :func:`render` renders ``templates/console``
(an undefined variable is an error), :func:`encode_payload` checks every flag and metric name
against the allowlist and a strict pattern and packs them, with the desired values, into the
one base64 literal a template decodes; :class:`FlagReading`, :class:`Change`,
:class:`ApplyResult` and :class:`HealthReading` are what a console call gives back.
:class:`rollout.console.RemoteConsole` runs them on a host.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import jinja2

from . import resources
from .errors import TemplateError, UsageError
from .fleetrecord import HostState
from .models import (
    FLAG_NAME_RE,
    METRIC_NAME_RE,
    FlagState,
    FlagValue,
    Observed,
)
from .templating import jinja_environment

MARKER = "ROLLOUT-RESULT/1"
TEMPLATES = resources.TEMPLATES

#: Reads ``NAME=value`` lines up to a blank line into the environment, then runs the
#: release's rpc with the rest of stdin as the expression. ``$0`` is the release's bin script.
RPC_SCRIPT = 'while IFS= read -r l && [ -n "$l" ]; do export "$l"; done; exec "$0" rpc "$(cat)"'


@cache
def template_env() -> jinja2.Environment:
    """Jinja2 over ``templates/``; an undefined variable is an error, never an empty string."""
    return jinja_environment(TEMPLATES, keep_trailing_newline=True)


def render(name: str, **context: object) -> str:
    """Render ``templates/<name>``; a missing template or variable is a TemplateError."""
    try:
        return template_env().get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise TemplateError(f"template {TEMPLATES / name} not found") from None
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {name}: {exc.message}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(f"template {exc.filename}:{exc.lineno}: {exc.message}") from None


def encode_payload(
    allow: Iterable[str], state: FlagState | None = None, metrics: Iterable[str] = ()
) -> str:
    """The base64 payload the console templates decode: allowlist, targets, metric names."""
    lines = []
    for kind, names in (("allow", allow), ("metric", metrics)):
        for name in names:
            pattern = FLAG_NAME_RE if kind == "allow" else METRIC_NAME_RE
            if not pattern.match(name):
                raise UsageError(f"refusing {kind} name {name!r}: not a plain lowercase name")
            lines.append(f"{kind} {name} -")
    allowed = set(allow)
    for name, value in state or ():
        if name not in allowed or not FLAG_NAME_RE.match(name):
            raise UsageError(f"refusing flag {name!r}: not in the playbook's flags")
        lines.append(f"set {name} {encode_value(name, value)}")
    return base64.b64encode("\n".join(lines).encode("ascii")).decode("ascii")


def encode_value(name: str, value: FlagValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and 1 <= value <= 100:
        return str(value)
    raise UsageError(f"refusing value {value!r} for flag {name}: expected a boolean or 1..100")


@dataclass(frozen=True)
class FlagReading:
    """Flags as read back from one host's node."""

    host: str
    node: str
    flags: Mapping[str, Observed]
    state: HostState | None = None  # the host's fleet-side record and lease (fleetstate)
    console: str = "rpc"  # the console path the reading came through (rollout.erlcall)
    console_fallback: str | None = None  # why rpc, when erl_call was wanted (auto)


@dataclass(frozen=True)
class Change:
    """What an apply records on the host: the action and the phase it converges to."""

    action: str
    phase: int | None
    #: the run's last change to the host: the same call gives the fleet lease back
    last: bool = False


@dataclass(frozen=True)
class ApplyResult:
    """What one apply did: the setter replies that were not ``:ok``, and the read-back."""

    reading: FlagReading
    errors: Mapping[str, str]  # flag -> the reply (inspect) that was not :ok


@dataclass(frozen=True)
class HealthReading:
    """Flags and raw metric values from one host; a value is None when missing or not a number."""

    reading: FlagReading
    metrics: Mapping[str, float | None]
    raw: Mapping[str, str]  # metric -> what the node returned, for the ledger
