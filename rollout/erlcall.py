"""The erl_call console path: a release's own ``erts-*/bin/erl_call`` instead of its ``rpc``.

``bin/<release> rpc`` boots a second BEAM VM on the host for every call (0.7-1.3 s, a quarter
to most of a core-second); ``erl_call`` is a small C node that asks the live node to evaluate
Erlang expressions and answers in milliseconds (BENCHMARKS.md). It is used on every host
whose release has it, chosen once per host per run (:class:`ConsolePaths`, the inventory's
``rollout_console``: ``auto`` (default), ``erl_call`` or ``rpc``); ``auto`` falls back to
``rpc`` with the reason recorded in the host's ``host.read`` event and in ``status``.

The rules, as the prototype (``bench/erlcall.py``) proved them:

* node name, distribution and cookie come from the release's own environment, as its bin
  script computes them (``releases/start_erl.data``, ``releases/<vsn>/env.sh``,
  ``releases/COOKIE``) after the inventory's ``release_env``; the shell function
  :data:`CONSOLE_FUNCTION` is fixed text and holds no value;
* the cookie is never on a command line (``ps`` on the host would show it): the function
  writes it with the shell's builtin ``printf`` into ``.erlang.cookie`` (mode 0600) in a
  private ``mktemp -d`` directory that is erl_call's ``HOME``, and removes that directory
  when the call ends (also when it is killed with TERM/HUP/INT);
* a deadline inside (erl_call's ``-timeout``) and around (coreutils ``timeout``, as every
  remote command has);
* values never become code: the expressions (``templates/console/erl/``) carry the same
  one base64 payload as the rpc templates, decoded and checked against the same patterns
  in the node; names are atoms only after that check;
* replies are accepted only through the strict term parser (:mod:`rollout.erlterm`) and only
  in the exact shapes below; an ``{error, ...}`` or ``{badrpc, ...}`` reply, a pid, a binary,
  exit 0 with anything else, or a non-zero exit is a failure::

      read:   {ok, {rollout_flags, NodeB64, [{Flag, Value}, ...]}}
      apply:  {ok, {rollout_apply, NodeB64, [{Flag, {other, InspectB64}}, ...], Flags}}
      health: {ok, {rollout_health, NodeB64, Flags, [{Metric, Number}, ...]}}
      probe:  {ok, {rollout_probe, NodeB64}}

  where Value is ``true | false | Integer | absent | null | {other, InspectB64}`` and Number
  ``Integer | {float, "1.5"} | null | {other, InspectB64}`` (erl_call prints floats with six
  decimals, so they travel as text; it prints strings without escaping quotes, so the only
  strings a reply may hold are base64 and float text, checked by pattern).

:func:`judge` turns an accepted reply into the same data the rpc path's JSON line gives, so
:class:`rollout.console.RemoteConsole` checks both paths' results with one piece of code.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum

from .erlterm import Atom, TermError, parse
from .errors import UsageError
from .flagvalues import ABSENT, OTHER
from .models import FLAG_NAME_RE, METRIC_NAME_RE, ConsoleMode

BEGIN = "ROLLOUT-ERLCALL/1 begin"
END = "ROLLOUT-ERLCALL/1 end "
#: The function's exit status when the release cannot be reached through erl_call at all
#: (no erl_call, no start_erl.data, a distribution erl_call does not speak): a fallback.
UNAVAILABLE_STATUS = 69

#: The line between the two bodies of an ``auto`` call (:func:`fold`) on stdin.
BODY_SEPARATOR = "ROLLOUT-CONSOLE/1 rpc-body"
#: The line an ``auto`` call prints on stderr, after the reason, when it ran the rpc body.
FALLBACK = "ROLLOUT-CONSOLE/1 fallback rpc"
#: The console path argument of an ``auto`` call (erl_call, else rpc in the same exec).
AUTO = "auto"

#: ``con``: the console call of :data:`rollout.fleetstate.STATE_SCRIPT`. ``$cm`` is the path
#: (``rpc``, ``erl_call`` or ``auto``), ``$ct`` erl_call's deadline; ``$0`` the release's bin
#: script. The erl_call branch (``ce``) runs in a subshell, so the release's env.sh cannot
#: touch the state script's variables (nor its umask); stdin (the expressions) goes straight
#: to erl_call. It starts few processes (each costs the host about a millisecond): mktemp,
#: erl_call, rm. ``auto`` (a host's first read, :func:`fold`) reads two bodies, the erl_call
#: expressions and the rpc code, split at the :data:`BODY_SEPARATOR` line with the shell's
#: own pattern removal (values are never evaluated), runs the first through ``ce``, and only
#: when that exits :data:`UNAVAILABLE_STATUS` (no erl_call at all: nothing reached the node)
#: prints :data:`FALLBACK` on stderr, after ``ce``'s reason, and runs the second through rpc.
#: Any other outcome is erl_call's, judged by the controller as in the ``erl_call`` path.
CONSOLE_FUNCTION = r"""con() {
  case $cm in
  rpc) "$0" rpc "$(cat)"; return;;
  erl_call) ce; return;;
  esac
  fs='
ROLLOUT-CONSOLE/1 rpc-body
'
  fb=$(cat)
  fe=${fb%%"$fs"*}
  [ "$fe" != "$fb" ] || return 70
  ce <<ROLLOUT_ERL_BODY
$fe
ROLLOUT_ERL_BODY
  fc=$?
  [ $fc = 69 ] || return $fc
  printf '%s\n' 'ROLLOUT-CONSOLE/1 fallback rpc' >&2
  "$0" rpc "${fb#*"$fs"}"
}
ce() {
  (
  u() { printf 'rollout: %s\n' "$1" >&2; exit 69; }
  s=$0; [ ! -L "$0" ] || s=$(readlink "$0") || s=$0
  RELEASE_ROOT=$(CDPATH='' cd "${s%/*}/.." && pwd -P) || u "cannot find the release root"
  ev= rv=
  [ -r "$RELEASE_ROOT/releases/start_erl.data" ] || u "the release has no releases/start_erl.data"
  IFS=' ' read -r ev rv < "$RELEASE_ROOT/releases/start_erl.data"
  [ -n "$ev" ] && [ -n "$rv" ] || u "releases/start_erl.data does not name the erts and release"
  x=$RELEASE_ROOT/erts-$ev/bin/erl_call
  [ -x "$x" ] || u "the release has no erts-$ev/bin/erl_call"
  RELEASE_NAME=${RELEASE_NAME:-${0##*/}} RELEASE_VSN=${RELEASE_VSN:-$rv}
  RELEASE_COMMAND=rpc RELEASE_PROG=${0##*/}
  export RELEASE_ROOT RELEASE_NAME RELEASE_VSN RELEASE_COMMAND RELEASE_PROG
  [ ! -f "$RELEASE_ROOT/releases/$RELEASE_VSN/env.sh" ] ||
    . "$RELEASE_ROOT/releases/$RELEASE_VSN/env.sh"
  k=${RELEASE_COOKIE:-}
  [ -n "$k" ] || { IFS= read -r k < "$RELEASE_ROOT/releases/COOKIE" || [ -n "$k" ]; } ||
    u "cannot read the release's releases/COOKIE"
  unset RELEASE_COOKIE
  n=${RELEASE_NODE:-$RELEASE_NAME} ds=${RELEASE_DISTRIBUTION:-sname}
  case $ds in sname|name) ;; *) u "RELEASE_DISTRIBUTION=$ds: erl_call needs sname or name";; esac
  h=$(mktemp -d) || u "mktemp -d failed"
  trap 'rm -rf "$h"' EXIT
  trap 'exit 143' HUP INT TERM
  umask 077
  printf '%s' "$k" > "$h/.erlang.cookie" || u "cannot write the cookie file"
  k=
  o=$(HOME=$h "$x" "-$ds" "$n" -timeout "$ct" -e)
  r=$?
  printf 'ROLLOUT-ERLCALL/1 begin\n%s\nROLLOUT-ERLCALL/1 end %s\n' "$o" "$r"
  # in auto, 69 means only "unavailable" (the fallback): erl_call's own 69 is a failure
  [ $r = 0 ] || { [ "$r$cm" = 69auto ] && exit 1; exit $r; }
  # an apply whose setters did not all answer ok exits 1, as the rpc template's raise does
  case $o in '{ok, {rollout_apply, '*) case $o in *'", [], ['*) ;; *) exit 1;; esac;; esac
  exit 0
  )
}
"""


def fold(erl_body: str, rpc_body: str) -> str:
    """The stdin body of an ``auto`` call: the erl_call expressions, the separator line, the
    rpc code. Both are rendered templates (fixed text and one checked base64 payload), so
    neither holds the separator; one that did would be refused here, never split wrong."""
    if BODY_SEPARATOR in erl_body or BODY_SEPARATOR in rpc_body:
        raise ValueError("a console body holds the auto call's separator line")
    return erl_body.rstrip("\n") + "\n" + BODY_SEPARATOR + "\n" + rpc_body


def fallback_reason(stderr: str) -> str | None:
    """Why an ``auto`` call ran its rpc body (the erl_call branch's own words, as a probe
    records them), or None when it did not (no :data:`FALLBACK` line)."""
    lines = stderr.split("\n")
    if FALLBACK not in lines:
        return None
    before = "\n".join(lines[: lines.index(FALLBACK)])
    return before.strip().removeprefix("rollout: ") or "erl_call is unavailable"


class ConsolePath(Enum):
    """How one host's console calls reach its node."""

    RPC = "rpc"  # bin/<release> rpc: a client VM per call
    ERL_CALL = "erl_call"  # erts-*/bin/erl_call: a C node, milliseconds per call


@dataclass(frozen=True)
class PathChoice:
    """The path a host uses for the rest of the run, and why it is rpc when erl_call was
    wanted (``auto`` fell back), or None."""

    path: ConsolePath
    fallback: str | None = None


class ConsolePaths:
    """The console path of every host of one run: chosen once per host, shared by threads.

    ``override`` (``ROLLOUT_CONSOLE``) replaces every host's ``rollout_console``.
    """

    def __init__(self, override: ConsoleMode | None = None) -> None:
        self.override = override
        self._chosen: dict[str, PathChoice] = {}
        self._lock = threading.Lock()

    def mode(self, wanted: ConsoleMode) -> ConsoleMode:
        return self.override or wanted

    def get(self, host: str) -> PathChoice | None:
        with self._lock:
            return self._chosen.get(host)

    def set(self, host: str, choice: PathChoice) -> PathChoice:
        with self._lock:
            return self._chosen.setdefault(host, choice)


#: The environment variable that overrides every host's ``rollout_console`` (CI, tests).
OVERRIDE_ENV = "ROLLOUT_CONSOLE"


def console_override(environ: Mapping[str, str] | None = None) -> ConsoleMode | None:
    """``ROLLOUT_CONSOLE`` (``auto``, ``erl_call`` or ``rpc``), or None when unset or empty."""
    text = (os.environ if environ is None else environ).get(OVERRIDE_ENV, "").strip()
    if not text:
        return None
    try:
        return ConsoleMode(text)
    except ValueError:
        raise UsageError(
            f"{OVERRIDE_ENV}={text[:40]!r} is not a console path",
            hint=f"set {OVERRIDE_ENV} to auto, erl_call or rpc, or unset it",
        ) from None


class Kind(Enum):
    """Which expression a reply answers, and the tag it must carry."""

    READ = "rollout_flags"
    APPLY = "rollout_apply"
    HEALTH = "rollout_health"
    PROBE = "rollout_probe"


@dataclass(frozen=True)
class Reply:
    """One erl_call answer: the data (rpc JSON shape) when accepted, else why not."""

    data: dict[str, object] | None
    why: str = ""
    status: int | None = None  # erl_call's own exit status, from the end marker
    rest: str = ""  # what the state script printed after the console (ROLLOUT-STATE lines)


_B64_RE = re.compile(r"^[A-Za-z0-9+/]{1,8192}={0,2}$")
_FLOAT_RE = re.compile(r"^-?[0-9]+\.[0-9]+(?:e[+-]?[0-9]+)?$")


class _Refused(Exception):
    pass


def split(stdout: str) -> tuple[str | None, int | None, str]:
    """erl_call's own output between the markers, its exit status, and what followed."""
    start = stdout.find(BEGIN + "\n")
    if start < 0:
        return None, None, stdout
    body_at = start + len(BEGIN) + 1
    end = stdout.rfind("\n" + END)
    if end < body_at - 1:
        return stdout[body_at:], None, ""
    line_end = stdout.find("\n", end + 1 + len(END))
    code = stdout[end + 1 + len(END) : line_end if line_end >= 0 else None].strip()
    rest = stdout[line_end + 1 :] if line_end >= 0 else ""
    return stdout[body_at:end], int(code) if code.isdigit() else None, rest


def judge(stdout: str, kind: Kind) -> Reply:
    """Accept exactly the expected reply shape for ``kind``; anything else is refused."""
    text, status, rest = split(stdout)
    if text is None:
        return Reply(None, "erl_call did not run (no reply markers)", None, rest)
    if status is None:
        return Reply(None, "erl_call's reply is cut short (no end marker)", None, rest)
    if status != 0:
        return Reply(None, f"erl_call exited {status}: {_excerpt(text)}", status, rest)
    head = text.lstrip()
    if head.startswith(("{error,", "{badrpc,")):
        # erl_call prints these with unescaped quotes: name them, never parse them
        return Reply(None, f"the node reported an error: {_excerpt(head)}", status, rest)
    try:
        term = parse(text)
        data = _data(term, kind)
    except TermError as exc:
        return Reply(None, f"not a plain term ({exc}): {_excerpt(head)}", status, rest)
    except _Refused as exc:
        return Reply(None, f"{exc}: {_excerpt(head)}", status, rest)
    return Reply(data, "", status, rest)


def _excerpt(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _data(term: object, kind: Kind) -> dict[str, object]:
    if not (isinstance(term, tuple) and len(term) == 2 and term[0] == Atom("ok")):
        raise _Refused("not {ok, _}")
    body = term[1]
    size = {Kind.READ: 3, Kind.APPLY: 4, Kind.HEALTH: 4, Kind.PROBE: 2}[kind]
    if not (isinstance(body, tuple) and len(body) == size and body[0] == Atom(kind.value)):
        raise _Refused(f"not a {kind.value} tuple of {size}")
    node = body[1]
    if not isinstance(node, str) or not _B64_RE.match(node):
        raise _Refused("the node name is not base64 text")
    data: dict[str, object] = {"node": node}
    if kind is Kind.PROBE:
        return data
    data["flags"] = _pairs(body[-1] if kind is Kind.APPLY else body[2], FLAG_NAME_RE, _value)
    if kind is Kind.APPLY:
        data["errors"] = _pairs(body[2], FLAG_NAME_RE, _other)
    if kind is Kind.HEALTH:
        data["metrics"] = _pairs(body[3], METRIC_NAME_RE, _number)
    return data


def _pairs(
    items: object, name_re: re.Pattern[str], convert: Callable[[object], object]
) -> dict[str, object]:
    if not isinstance(items, list):
        raise _Refused("a list of {name, value} pairs was expected")
    out: dict[str, object] = {}
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], Atom)):
            raise _Refused("an entry is not {name, value}")
        name = item[0].name
        if not name_re.match(name) or name in out:
            raise _Refused(f"an entry's name is not a plain, unique name: {name[:80]!r}")
        out[name] = convert(item[1])
    return out


def _other(value: object) -> Mapping[str, str]:
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and value[0] == Atom("other")
        and isinstance(value[1], str)
        and _B64_RE.match(value[1])
    ):
        return {OTHER: value[1]}
    raise _Refused("a value is not {other, Base64}")


def _value(value: object) -> object:
    if isinstance(value, int):  # true, false (bool) or an integer
        return value
    if value == Atom(ABSENT):
        return ABSENT
    if value == Atom("null"):
        return None
    return _other(value)


def _number(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value == Atom("null"):
        return None
    if isinstance(value, tuple) and len(value) == 2 and value[0] == Atom("float"):
        text = value[1]
        if isinstance(text, str) and _FLOAT_RE.match(text):
            return float(text)
        raise _Refused("a float is not plain float text")
    return _other(value)
