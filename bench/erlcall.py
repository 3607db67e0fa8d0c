"""Prototype: reading flags and health through ``erl_call`` instead of ``bin/foundation rpc``.

``bin/foundation rpc`` boots a whole client VM per call (hundreds of milliseconds). The
release's own ``erts-*/bin/erl_call`` is a small C program that talks the distribution protocol
and answers in milliseconds, but it exits 0 when the call raised or returned an error, and it
prints Erlang terms. It can be used only with strict parsing, so :func:`classify` accepts
exactly the reply shapes below and treats everything else (a non-zero exit, ``{error, _}``,
``{badrpc, _}``, a pid, a value that is not a boolean or an integer, trailing
text) as a failure:

    read:    {ok, {rollout_flags, Node, [{Flag, true | false | Integer}, ...]}}
    health:  {ok, {rollout_health, Node, [{Flag, Value}, ...], #{Metric => Number, ...}}}

The cookie never appears on a command line (where ``ps`` on the host would show it): the call
runs with ``HOME`` pointing at a directory whose ``.erlang.cookie`` links to the release's
``releases/COOKIE``, which erl_call reads like any Erlang node does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rollout.erlterm import Atom, TermError, parse
from rollout.transport.base import remote_command

TABLE = "foundation_feature_flags"
MONITOR = "'Elixir.Foundation.Deployment.Monitor'"

READ_EXPR = (
    f"case ets:info({TABLE}, size) of undefined -> {{rollout_error, no_table}}; "
    f"_ -> {{rollout_flags, node(), ets:tab2list({TABLE})}} end."
)
HEALTH_EXPR = (
    f"{{rollout_health, node(), ets:tab2list({TABLE}), "
    f"maps:get(metrics, {MONITOR}:get_deployment_health())}}."
)

#: Runs erl_call for the release at $1 with the expression on stdin: $2 is erl_call's own
#: timeout, $3 the node ("-": the release's), the rest extra erl_call options. The node name
#: and epmd port come from the release's node.env; the cookie from $HOME/.erlang.cookie.
ERL_CALL_SCRIPT = (
    'r=$1; t=$2; n=$3; shift 3; . "$r/node.env" || exit 2; [ "$n" != - ] || n=$RELEASE_NODE; '
    'd="$r/.erl_call"; [ -e "$d/.erlang.cookie" ] || { mkdir -p "$d" && '
    'ln -sf "$r/releases/COOKIE" "$d/.erlang.cookie"; } || exit 2; '
    'for ec in "$r"/erts-*/bin/erl_call; do :; done; '
    'HOME=$d exec "$ec" -name "$n" -timeout "$t" "$@" -e'
)


def erl_call_command(
    release_dir: str,
    expr: str,
    timeout: int = 10,
    *,
    node: str = "-",
    extra: Sequence[str] = (),
) -> str:
    """The remote command: erl_call under coreutils ``timeout``, the expression on stdin."""
    inner = str(max(1, timeout - 1))
    argv = ["sh", "-c", ERL_CALL_SCRIPT, "sh", release_dir, inner, node, *extra]
    return f"{remote_command(argv, timeout)} <<'ROLLOUT_BENCH_EOF'\n{expr}\nROLLOUT_BENCH_EOF\n"


@dataclass(frozen=True)
class Reply:
    """What one erl_call answered, judged strictly."""

    ok: bool
    why: str = ""
    node: str = ""
    flags: Mapping[str, bool | int | None] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


def classify(
    exit_status: int,
    stdout: str,
    *,
    allow: Sequence[str],
    metrics: Sequence[str] = (),
    health: bool = False,
) -> Reply:
    """Judge one reply; only the exact expected shape is a success."""
    if exit_status != 0:
        return Reply(False, f"exit status {exit_status}")
    head = stdout.lstrip()
    if head.startswith(("{error,", "{badrpc,")):
        # erl_call prints these unescaped (quotes inside strings): name them, do not parse.
        return Reply(False, f"erl_call reported {head[1 : head.index(',')]}")
    try:
        term = parse(stdout)
    except TermError as exc:
        return Reply(False, f"not a plain term: {exc}")
    if not (isinstance(term, tuple) and len(term) == 2 and term[0] == Atom("ok")):
        return Reply(False, f"not {{ok, _}}: {stdout.strip()[:120]}")
    body = term[1]
    tag = Atom("rollout_health" if health else "rollout_flags")
    size = 4 if health else 3
    if not (isinstance(body, tuple) and len(body) == size and body[0] == tag):
        return Reply(False, f"unexpected result: {stdout.strip()[:120]}")
    node = body[1]
    if not isinstance(node, Atom):
        return Reply(False, "the node is not an atom")
    flags, why = _flags(body[2], allow)
    if flags is None:
        return Reply(False, why)
    values: dict[str, float] = {}
    if health:
        got = body[3]
        if not isinstance(got, dict):
            return Reply(False, "metrics are not a map")
        for name in metrics:
            value = got.get(Atom(name))
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return Reply(False, f"metric {name} is missing or not a number")
            values[name] = float(value)
    return Reply(True, node=node.name, flags=flags, metrics=values)


def _flags(table: object, allow: Sequence[str]) -> tuple[dict[str, bool | int | None] | None, str]:
    if not isinstance(table, list):
        return None, "the flag table is not a list"
    found: dict[str, bool | int] = {}
    for row in table:
        if not (isinstance(row, tuple) and len(row) == 2 and isinstance(row[0], Atom)):
            return None, f"a flag row is not {{atom, value}}: {row!r}"
        name, value = row[0].name, row[1]
        if name in allow:
            if not isinstance(value, (bool, int)):
                return None, f"flag {name} holds {value!r}, not a boolean or an integer"
            found[name] = value
    # A flag the table lacks reads as absent (None), as in the tool's own read-back.
    return {name: found.get(name) for name in allow}, ""
