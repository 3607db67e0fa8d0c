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
``ROLLOUT-STATE/1 ...`` lines that :func:`rollout.fleetrecord.parse_state` turns into a
:class:`~rollout.fleetrecord.HostState`,
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

The record and lease as values (the JSON documents, the parsed state lines, the knowledge
rule) are pure and live in :mod:`rollout.fleetrecord`; this module is what travels to the
host: the script, its loader and header, and one run's side of it (:class:`FleetSide`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum

from .clock import SYSTEM, Clock
from .erlcall import CONSOLE_FUNCTION
from .errors import HostError
from .fleetrecord import LEASE_ID_RE, Holder, HostState, Record

#: The script's exit status when the lease is not ours (nothing was changed or run).
CONFLICT_STATUS = 75
#: Seconds the script waits for the host's state lock (another call on that host).
STATE_LOCK_WAIT = 20

#: Reads ``NAME=value`` environment lines up to a blank line, then the state header (three
#: lines: ``op lease_id ttl replace``, the holder JSON, the record JSON). ``$0`` is the
#: release's bin script, ``$1`` the state directory, ``$2`` the console path (``rpc``,
#: ``erl_call`` or ``auto``, :mod:`rollout.erlcall`) and ``$3`` erl_call's own deadline in
#: seconds. The rest of stdin is the console's code: the rpc expression, erl_call's
#: expressions, or (``auto``) both, folded by :func:`rollout.erlcall.fold`.
STATE_SCRIPT = r"""while IFS= read -r l && [ -n "$l" ]; do export "$l"; done
IFS=' ' read -r op lid ttl prev || exit 70
IFS= read -r holder || exit 70
IFS= read -r rec || exit 70
case $ttl in ''|*[!0-9]*) exit 70;; esac
cm=${2:-rpc} ct=${3:-60}
case $cm in rpc|erl_call|auto) ;; *) exit 70;; esac
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
