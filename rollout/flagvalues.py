"""The JSON forms of one observed flag value (:data:`rollout.models.Observed`), both ways.

A flag value crosses JSON in three places, each with its own form:

- **from a node**: what the console's state script prints (and what :mod:`rollout.erlcall`
  turns an erl_call term into): ``true``/``false``, an integer, ``"absent"`` or ``null`` for
  a flag the node does not hold, and ``{"other": Base64}`` for any other term, the node's own
  ``inspect`` text; :func:`from_node` reads it, :func:`node_text` shows any such value.
- **for events, the ledger and ``--json`` output**: booleans, integers and null as such, an
  opaque value as its text for people (``unexpected value ...``); in events and ledger rows
  that text is clipped like any host output (:func:`event_flags`), a status report shows it
  whole (:func:`shown_flags`).
- **in a backup manifest** (and the backup and restore events and intents, which show what
  it holds): booleans, integers and null as such, an opaque value as ``{"opaque": text}``,
  sorted by name (:func:`manifest_flags`); read back strictly by
  :func:`from_manifest`, which names the key of a bad value (:class:`BadFlagValue`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from .models import Observed, Opaque
from .output import clip

#: A node's word for a flag it does not hold.
ABSENT = "absent"
#: The key of a node's ``{"other": Base64}`` value (any term but a boolean or an integer).
OTHER = "other"
#: The key of a manifest's ``{"opaque": text}`` value.
OPAQUE = "opaque"

#: A flag value as events, ledger rows and reports hold it.
Shown = bool | int | str | None


class BadFlagValue(ValueError):
    """A stored flag value (or flags object) that is not one; ``key`` names where it is."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.message = message
        self.key = key


# --- from a node ---------------------------------------------------------------------------


def from_node(value: object) -> Observed:
    """One flag value as a node printed it: a value, None (absent) or :class:`Opaque`."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if value == ABSENT or value is None:
        return None
    return Opaque(node_text(value))


def node_text(value: object) -> str:
    """A printable form of a decoded JSON value (``{"other": b64}`` -> the node's inspect)."""
    if isinstance(value, dict) and set(value) == {OTHER} and isinstance(value[OTHER], str):
        try:
            return base64.b64decode(value[OTHER], validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return "<undecodable>"
    return json.dumps(value)


# --- for events, the ledger and reports ----------------------------------------------------


def shown(value: Observed) -> Shown:
    """``value`` for JSON output: as is, an opaque value as its text for people."""
    return value if isinstance(value, (bool, int)) or value is None else str(value)


def shown_flags(flags: Mapping[str, Observed]) -> dict[str, Shown]:
    """Every value :func:`shown`, whole (a status report's flags)."""
    return {name: shown(value) for name, value in flags.items()}


def event_flags(flags: Mapping[str, Observed]) -> dict[str, object]:
    """Every value :func:`shown`, an opaque one clipped: flags in events and ledger rows."""
    out: dict[str, object] = {}
    for name, value in flags.items():
        text = shown(value)  # an opaque value is the node's own text: bounded like host output
        out[name] = clip(text) if isinstance(text, str) else text
    return out


# --- in a backup manifest ------------------------------------------------------------------


def manifest_flags(flags: Mapping[str, Observed]) -> dict[str, object]:
    """Values as JSON, sorted by name: as is, absent as null, opaque as ``{"opaque": text}``."""
    out: dict[str, object] = {}
    for name, value in sorted(flags.items()):
        out[name] = {OPAQUE: value.text} if isinstance(value, Opaque) else value
    return out


def from_manifest(raw: object, where: str) -> dict[str, Observed]:
    """A manifest's flags object read strictly; :class:`BadFlagValue` names a bad key.

    ``where`` is the key of the object itself (``hosts.web1.flags``); a bad value's key is
    ``where.name``.
    """
    if not isinstance(raw, dict):
        raise BadFlagValue("flags must be an object", where)
    out: dict[str, Observed] = {}
    for name, value in raw.items():
        if value is None or isinstance(value, (bool, int)):
            out[name] = value
        elif isinstance(value, dict) and set(value) == {OPAQUE}:
            out[name] = Opaque(str(value[OPAQUE]))
        else:
            raise BadFlagValue(
                f"flag value {value!r} is not a boolean, integer or null", f"{where}.{name}"
            )
    return out
