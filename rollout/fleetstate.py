"""The fleet-side state: a record of the last change and a lease, kept on every host.

Several controllers (laptops, CI runners), each with its own ledger, may drive one fleet. The
one thing they all read before changing anything is the fleet itself, so each host carries,
in a small state directory (``rollout_state_dir``, default ``<release root>/.rollout-state``):

``record``  one JSON line: the last change to this host (rollout, run, controller, command,
            phase, a generation that grows with every change, the pause and its reason);
``lease``   ``<lease id> <expiry, host epoch seconds>`` and one JSON line naming the holder;
``lock``    the ``flock`` that makes every read-decide-write on the two files atomic.

Both files ride on the console calls the tool already makes (no extra round trip): the
fixed script :data:`STATE_SCRIPT` runs around the console call (the release's ``rpc``, or
its ``erl_call``: :mod:`rollout.erlcall`) in the same ``sh -c``.
The header (operation, lease id, time to live) and both JSON documents travel on stdin,
never on the command line; the script only copies them into files with
write-temp-then-rename and prints them back, so a value is never code. Every call prints
``ROLLOUT-STATE/1 ...`` lines that :func:`parse_state` turns into a :class:`HostState`,
after the console's own output: the first bytes a call sends back come from the console, so
a connection lost before them means the change ran or did not, as without the state.

Operations (:class:`Op`): ``peek`` reads; ``take`` takes the lease when it is free, expired,
already ours, or held by the exact id the caller may replace (``*``: any, for an emergency);
``renew`` extends our lease; ``apply`` renews it and writes the record *before* running the
change, all under the host's flock (so a take-over waits for an apply in flight and the
apply never runs for a run that lost the lease); ``final`` is an apply that also gives the
lease back, still under the flock, when the console exits 0 (a run's last change to the
host: no call of its own to release it); ``note`` writes a record without a change
(resume); ``release`` gives the lease back. A lease that is not ours ends the call with
:data:`CONFLICT_STATUS` before the console runs: nothing is changed.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum

from .clock import SYSTEM, Clock
from .erlcall import CONSOLE_FUNCTION
from .errors import HostError, UsageError

STATE_MARKER = "ROLLOUT-STATE/1"
#: The script's exit status when the lease is not ours (nothing was changed or run).
CONFLICT_STATUS = 75
#: Seconds the script waits for the host's state lock (another call on that host).
STATE_LOCK_WAIT = 20
LEASE_ID_RE = re.compile(r"^fl-[0-9a-f]{12}$")
#: Longest JSON document the script will carry (a record or a holder).
MAX_DOC = 4096

#: Reads ``NAME=value`` environment lines up to a blank line, then the state header (three
#: lines: ``op lease_id ttl replace``, the holder JSON, the record JSON). ``$0`` is the
#: release's bin script, ``$1`` the state directory, ``$2`` the console path (``rpc`` or
#: ``erl_call``, :mod:`rollout.erlcall`) and ``$3`` erl_call's own deadline in seconds. The
#: rest of stdin is the console's code: the rpc expression, or erl_call's expressions.
STATE_SCRIPT = r"""while IFS= read -r l && [ -n "$l" ]; do export "$l"; done
IFS=' ' read -r op lid ttl prev || exit 70
IFS= read -r holder || exit 70
IFS= read -r rec || exit 70
case $ttl in ''|*[!0-9]*) exit 70;; esac
cm=${2:-rpc} ct=${3:-60}
case $cm in rpc|erl_call) ;; *) exit 70;; esac
case $ct in ''|*[!0-9]*) exit 70;; esac
ERLCALL_FUNCTION
[ "$op" = none ] && { con; exit; }
d=$1
st=
say() { st="${st}ROLLOUT-STATE/1 $1
"; }
out() { printf '%s' "$st"; }
[ -d "$d" ] || mkdir -p "$d" || { say "error cannot create the state directory $d"; out; exit 71; }
exec 9>>"$d/lock" || { say "error cannot open $d/lock"; out; exit 71; }
flock -w WAIT 9 || { say "error the state lock $d/lock stayed busy"; out; exit 72; }
now=$(date +%s)
cur= exp=0 curh=
[ -f "$d/lease" ] && { IFS=' ' read -r cur exp; IFS= read -r curh; } < "$d/lease"
case $exp in ''|*[!0-9]*) exp=0;; esac
say "now $now"
mine=0; [ -n "$cur" ] && [ "$cur" = "$lid" ] && mine=1
put() {
  printf '%s %s\n%s\n' "$lid" "$((now + ttl))" "$holder" > "$d/lease.tmp" &&
  mv -f "$d/lease.tmp" "$d/lease" || { say "error cannot write $d/lease"; out; exit 71; }
}
status=ok
case $op in
take)
  if [ $mine = 1 ] || [ -z "$cur" ] || [ "$exp" -lt "$now" ] || [ "$prev" = '*' ] ||
     [ "$cur" = "$prev" ]; then
    if [ $mine = 0 ] && [ -n "$cur" ]; then say "previous $cur $exp"; say "previousholder $curh"; fi
    put; say "lease taken $lid $((now + ttl))"
  else status=conflict; say "lease held $cur $exp"; say "holder $curh"; fi;;
renew|apply|note|final)
  if [ $mine = 1 ] || [ "$prev" = '*' ]; then put; say "lease renewed $lid $((now + ttl))"
  else status=conflict; say "lease lost ${cur:--} $exp"; say "holder $curh"; fi;;
release)
  if [ $mine = 1 ]; then rm -f "$d/lease"; say "lease released $lid 0"
  else say "lease notmine ${cur:--} $exp"; fi;;
clear)
  if [ -n "$cur" ] && [ "$cur" = "$prev" ]; then rm -f "$d/lease"; say "lease cleared $cur $exp"
  else say "lease notmine ${cur:--} $exp"; fi;;
peek) say "lease peek ${cur:--} $exp"; say "holder $curh";;
*) exit 70;;
esac
if [ $status = ok ] && { [ "$op" = apply ] || [ "$op" = note ] || [ "$op" = final ]; }; then
  printf '%s\n' "$rec" > "$d/record.tmp" && mv -f "$d/record.tmp" "$d/record" ||
    { say "error cannot write $d/record"; out; exit 71; }
fi
r=
[ -f "$d/record" ] && IFS= read -r r < "$d/record"
say "record $r"
[ $status = conflict ] && { out; exit 75; }
case $op in release|note|clear) out; exit 0;; esac
con 9>&-
rc=$?
[ "$op" = final ] && [ $rc = 0 ] && rm -f "$d/lease" && say "released $lid"
out
exit $rc
""".replace("WAIT", str(STATE_LOCK_WAIT)).replace("ERLCALL_FUNCTION\n", CONSOLE_FUNCTION)


class Op(Enum):
    """What one console call does to the host's lease and record (see the module docstring)."""

    NONE = "none"  # no state at all (the old protocol)
    PEEK = "peek"
    TAKE = "take"
    RENEW = "renew"
    APPLY = "apply"
    FINAL = "final"  # an apply that gives the lease back after a console exit 0
    NOTE = "note"
    RELEASE = "release"
    CLEAR = "clear"  # remove the lease whose exact id is given (`invoke unlock fl-...`)


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
        from .lock import utc

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


#: The SSH command line's fixed script: it reads exactly the fixed :data:`STATE_SCRIPT`'s
#: bytes from stdin (GNU dd, one read with ``iflag=fullblock``, never past them) and runs it,
#: so the command line stays as short as the console call's was, while the script itself
#: never changes and holds no value; everything after it on stdin is read by the script.
LOADER = (
    f's=$(dd bs={len(STATE_SCRIPT.encode("ascii"))} count=1 iflag=fullblock 2>/dev/null) '
    '&& eval "$s"'
)


def script_stdin() -> str:
    """What a state call's stdin starts with: the fixed script, exactly as LOADER reads it."""
    return STATE_SCRIPT


def header(op: Op, lease_id: str | None, ttl: int, replace_id: str | None,
           holder: Holder | None, record: Record | None) -> str:  # fmt: skip
    """The three header lines the script reads after the environment."""
    if lease_id is not None and not LEASE_ID_RE.match(lease_id):
        raise ValueError(f"bad lease id {lease_id!r}")
    if replace_id not in (None, "*") and not LEASE_ID_RE.match(replace_id or ""):
        raise ValueError(f"bad lease id to replace {replace_id!r}")
    first = f"{op.value} {lease_id or '-'} {int(ttl)} {replace_id or '-'}"
    return (
        "\n".join((first, holder.to_json() if holder else "-", record.to_json() if record else "-"))
        + "\n"
    )


class LeaseConflict(HostError):
    """This call found the host's lease held by someone else; nothing was changed or run."""

    def __init__(self, host: str, state: HostState) -> None:
        lease = state.lease
        holder = lease.holder if lease else None
        if lease is not None and lease.status == "lost":
            what = "this run's fleet lease is gone"
            if lease.id and holder is not None:
                what += f": it is now held by {holder.describe()} as {lease.id}"
        else:
            what = "the fleet lease is held"
            if lease is not None and holder is not None:
                what += (
                    f" by {holder.describe()} as {lease.id}, expiring in "
                    f"{max(0.0, lease.expires_in):.0f}s"
                )
        super().__init__(host, what + "; nothing was changed")
        self.state = state


@dataclass
class FleetSide:
    """One run's side of the fleet state: its lease, the record it writes, what it has seen.

    Shared by every console call of the run (worker threads), so updates take a lock.
    ``op_read`` is what a flag read does to the lease: TAKE while claiming, RENEW after
    (PEEK for read-only commands, which hold no lease).
    """

    rollout: str
    holder: Holder | None
    ttl: int
    lease_id: str | None = None
    op_read: Op = Op.PEEK
    replace: dict[str, str] = field(default_factory=dict)  # host -> lease id we may replace
    states: dict[str, HostState] = field(default_factory=dict)
    lost: dict[str, HostState] = field(default_factory=dict)
    #: hosts whose lease a final apply gave (or, its outcome unknown, may have given) back,
    #: with the records the host may hold if no one changed it since (see ``seen``)
    given_back: dict[str, frozenset[str]] = field(default_factory=dict)
    pause: tuple[str, str] | None = None  # (by, reason) written with every change
    reason: str | None = None
    clock: Clock = SYSTEM  # its wall time stamps the records it writes (``changed``)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def seen(self, host: str, state: HostState) -> None:
        with self._lock:
            self.states[host] = state
            lease = state.lease
            if lease is not None and lease.status == "lost":
                self.lost[host] = state
            if lease is not None and lease.status == "released" and lease.id == self.lease_id:
                self.given_back[host] = frozenset((state.raw_record,))
            elif lease is not None and lease.status in ("taken", "renewed"):
                self.given_back.pop(host, None)

    def giving_back(self, host: str, record: Record) -> None:
        """A final apply to ``host`` is about to be sent: until its answer is read, the host
        may hold either its last seen record or ``record`` and may have no lease of ours."""
        with self._lock:
            last = self.states.get(host)
            self.given_back[host] = frozenset(
                (record.to_json(), last.raw_record if last else "")
            )

    def record_for(self, host: str, action: str, phase: int | None) -> Record:
        """The record a change to ``host`` writes: the generation after the last one seen."""
        assert self.holder is not None
        with self._lock:
            last = self.states.get(host)
        generation = (last.record.generation if last and last.record else 0) + 1
        paused_by, paused_reason = self.pause or (None, None)
        return Record(
            rollout=self.rollout,
            run_id=self.holder.run_id,
            who=self.holder.who,
            where=self.holder.where,
            ledger=self.holder.ledger,
            ledger_path=self.holder.ledger_path,
            command=self.holder.command,
            action=action,
            phase=phase,
            generation=generation,
            changed=self.clock.wall(),
            paused=self.pause is not None,
            paused_by=paused_by,
            paused_reason=paused_reason[:500] if paused_reason else None,
            reason=self.reason[:500] if self.reason else None,
        )

    def forget_lease(self) -> None:
        self.lease_id = None
        self.op_read = Op.PEEK
