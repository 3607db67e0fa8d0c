"""The fleet's record and lease as values: what a host's state directory holds, read back.

Each host keeps the last change made to it (:class:`Record`) and a lease naming who may change
it (:class:`Lease`, held by a :class:`Holder`); :mod:`rollout.fleetstate` carries them to and
from the host around the console call. This module is pure: the JSON documents as they are
written (:func:`dumps`, ``to_json``) and read back (``parse``, every value another
controller wrote shown as data: :func:`shown`), the ``ROLLOUT-STATE/1`` lines of one call
(:func:`parse_state` into a :class:`HostState`), the rule for "is this record a change this
ledger has not seen?" (:class:`Knowledge`) and a new lease id (:func:`new_lease_id`).
"""

from __future__ import annotations

import json
import re
import secrets
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from .clock import utc
from .errors import UsageError

STATE_MARKER = "ROLLOUT-STATE/1"
LEASE_ID_RE = re.compile(r"^fl-[0-9a-f]{12}$")
#: Longest JSON document the script will carry (a record or a holder).
MAX_DOC = 4096


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def shown(value: object, limit: int = 200) -> str:
    """Another controller's text, safe for a terminal: control and bidi characters escaped."""
    text = value if isinstance(value, str) else json.dumps(value)
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(data: Mapping[str, object], key: str) -> str:
    value = data.get(key)
    return shown(value) if value is not None else ""


def _number(data: Mapping[str, object], key: str) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    return float(value)


def _int(data: Mapping[str, object], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dumps(data: Mapping[str, object]) -> str:
    """One line of ASCII JSON (json escapes every control character), at most MAX_DOC long."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), sort_keys=True)
    if len(text) > MAX_DOC:
        raise UsageError(
            f"the fleet record would be {len(text)} bytes (at most {MAX_DOC})",
            hint="use a shorter --reason",
        )
    return text


def _loads(text: str) -> dict[str, object] | None:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: the run, its command, and the controller (user, machine, ledger)."""

    who: str
    where: str
    pid: int
    pid_start: str | None
    run_id: str
    command: str
    ledger: str  # the ledger's identity (random id), not its path
    ledger_path: str
    claimed: float  # controller wall clock when the claim started: the race tie-break

    def to_json(self) -> str:
        return dumps(asdict(self))

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        data = _loads(text)
        if data is None:
            return None
        return cls(
            who=_text(data, "who"),
            where=_text(data, "where"),
            pid=_int(data, "pid") or 0,
            pid_start=_text(data, "pid_start") or None,
            run_id=_text(data, "run_id"),
            command=_text(data, "command"),
            ledger=_text(data, "ledger"),
            ledger_path=_text(data, "ledger_path"),
            claimed=_number(data, "claimed"),
        )

    def describe(self) -> str:
        return f"{self.who}@{self.where} (run {self.run_id}, `{self.command}`)"


@dataclass(frozen=True)
class Record:
    """The last change made to one host, as every controller can read it on that host."""

    rollout: str
    run_id: str
    who: str
    where: str
    ledger: str
    ledger_path: str
    command: str
    action: str
    phase: int | None
    generation: int
    changed: float  # controller wall clock
    paused: bool = False
    paused_by: str | None = None
    paused_reason: str | None = None
    reason: str | None = None

    def to_json(self) -> str:
        return dumps(asdict(self))

    @classmethod
    def parse(cls, text: str) -> Record | None:
        data = _loads(text)
        if data is None:
            return None
        return cls(
            rollout=_text(data, "rollout"),
            run_id=_text(data, "run_id"),
            who=_text(data, "who"),
            where=_text(data, "where"),
            ledger=_text(data, "ledger"),
            ledger_path=_text(data, "ledger_path"),
            command=_text(data, "command"),
            action=_text(data, "action"),
            phase=_int(data, "phase"),
            generation=_int(data, "generation") or 0,
            changed=_number(data, "changed"),
            paused=data.get("paused") is True,
            paused_by=_text(data, "paused_by") or None,
            paused_reason=_text(data, "paused_reason") or None,
            reason=_text(data, "reason") or None,
        )

    def story(self, host: str | None = None) -> str:
        """Who changed what, when and why, in one line (all values shown as data)."""
        where = f"{host} " if host else ""
        phase = f"phase {self.phase}" if self.phase is not None else "no phase"
        why = f" ({self.reason})" if self.reason else ""
        pause = ""
        if self.paused:
            pause = f"; PAUSED by {self.paused_by or '?'}: {self.paused_reason or 'no reason'}"
        return (
            f"{where}was set to {phase} by {self.who}@{self.where} at {utc(self.changed)} "
            f"(run {self.run_id}, `{self.command}`, generation {self.generation}){why}{pause}"
        )


@dataclass(frozen=True)
class Knowledge:
    """What one ledger knows of the fleet's records: the one rule for "is this host's record
    another controller's change this ledger has not seen?"

    A record is known when this ledger wrote it (``mine``), when `invoke adopt` took its
    generation in (``adopted``, per host), or when it was written by a run of a ledger whose
    history was copied here (``continues``) and that run is in this ledger (``has_run``).
    """

    mine: str
    adopted: Mapping[str, int]
    continues: frozenset[str]
    has_run: Callable[[str], bool]

    def knows(self, host: str, record: Record) -> bool:
        if record.ledger == self.mine or record.generation <= self.adopted.get(host, 0):
            return True
        return record.ledger in self.continues and self.has_run(record.run_id)


@dataclass(frozen=True)
class Lease:
    """A host's lease as one call saw it. ``status``: taken, renewed, held, lost, released,
    notmine or peek (a ``final`` apply that gave it back: released); ``expires`` and ``now``
    are the host's clock (epoch seconds)."""

    status: str
    id: str | None
    expires: float
    now: float
    holder: Holder | None = None
    previous_id: str | None = None
    previous: Holder | None = None
    previous_expires: float = 0.0

    @property
    def expires_in(self) -> float:
        return self.expires - self.now

    @property
    def live(self) -> bool:
        return self.id is not None and self.expires >= self.now


@dataclass(frozen=True)
class HostState:
    """What one call read of a host's state directory: its lease and its record."""

    lease: Lease | None
    record: Record | None
    raw_record: str = ""
    error: str | None = None


def parse_state(stdout: str) -> HostState | None:
    """The ``ROLLOUT-STATE/1`` lines of one call, or None when there are none."""
    fields: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith(STATE_MARKER + " "):
            key, _, rest = line[len(STATE_MARKER) + 1 :].partition(" ")
            fields.setdefault(key, rest)
    if not fields:
        return None
    now = _float(fields.get("now", "0"))
    lease = None
    if "lease" in fields:
        parts = fields["lease"].split(" ")
        status = parts[0]
        lease_id = shown(parts[1], 40) if len(parts) > 1 and parts[1] not in ("", "-") else None
        expires = _float(parts[2]) if len(parts) > 2 else 0.0
        prev_id = prev_exp = None
        if "previous" in fields:
            prev = fields["previous"].split(" ")
            prev_id = shown(prev[0], 40) if prev[0] else None
            prev_exp = _float(prev[1]) if len(prev) > 1 else 0.0
        if "released" in fields and status == "renewed":
            status = "released"  # a final apply: renewed, the change ran, then given back
        lease = Lease(
            status=status,
            id=lease_id,
            expires=expires,
            now=now,
            holder=Holder.parse(fields.get("holder", "")),
            previous_id=prev_id,
            previous=Holder.parse(fields.get("previousholder", "")),
            previous_expires=prev_exp or 0.0,
        )
    raw = fields.get("record", "")
    return HostState(lease, Record.parse(raw) if raw else None, raw, fields.get("error"))


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


def new_lease_id() -> str:
    return "fl-" + secrets.token_hex(6)
