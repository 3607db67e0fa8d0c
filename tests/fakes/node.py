"""Fake release hosts that decode what the console sends and answer as the real ones do.

A :class:`FakeNode` receives the exact command line and stdin of a console call: the fixed
loader (``sh -c LOADER <release_bin> <state_dir> <path> <deadline>``; by default a fake
release has no erl_call, so the ``erl_call`` path answers as rollout.erlcall's function does
then, and ``auto`` runs its rpc body after the reason; with ``erl_call=True`` it answers the
``templates/console/erl/`` expressions as erl_call does), then on stdin the fleet-state
script, the release's environment, the state header and the rendered console template (for
``auto``, both bodies, split as the function splits them). It checks each part the way the
host would (the loader reads exactly the script's bytes; the script parses the header; the
template's prelude parses the payload with its strict patterns), runs the state operation on
its lease and record as ``fleetstate.STATE_SCRIPT`` does, then evaluates the template as
``Foundation.FeatureFlags`` and ``Foundation.Deployment.Monitor`` would and prints the same
``ROLLOUT-RESULT/1`` (or erl_call's framed term) and ``ROLLOUT-STATE/1`` lines. A body that
is not one of the console's templates, rendered for its payload, is refused (a real node
would run it).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.backend import SSHBackend
from rollout.commands.context import Context
from rollout.consolecode import MARKER, render
from rollout.erlcall import BEGIN, BODY_SEPARATOR, END, FALLBACK
from rollout.errors import TransportError
from rollout.fleetrecord import STATE_MARKER
from rollout.fleetstate import LOADER, STATE_SCRIPT
from rollout.models import FlagValue, Host, Playbook
from rollout.transport.base import KILL_AFTER, CommandResult

from .transport import Request, ScriptedTransport

#: The lab release's source: the fake node answers as that release does.
LAB_LIB = Path(__file__).resolve().parents[2] / "lab" / "foundation" / "lib" / "foundation"


def _elixir_map(source: Path, attribute: str) -> dict[str, Any]:
    """The ``@attribute %{key: value, ...}`` literal of a module, as Python values."""
    found = re.search(rf"@{attribute} %{{(.*?)}}", source.read_text(), re.S)
    assert found, f"{source} has no @{attribute}"
    return {k: json.loads(v) for k, v in re.findall(r"(\w+): ([\w.]+)", found.group(1))}


#: The flags the lab's Foundation.FeatureFlags knows, and their defaults.
DEFAULT_FLAGS: dict[str, FlagValue] = _elixir_map(
    LAB_LIB / "feature_flags.ex", "otp_refactor_flags"
)
#: Foundation.Deployment.Monitor's healthy defaults.
DEFAULT_METRICS: dict[str, float | int | None] = _elixir_map(
    LAB_LIB / "deployment" / "monitor.ex", "default_metrics"
)
_NAME_RE = re.compile(r"\A[a-z][a-z0-9_]{0,62}\Z")
_PAYLOAD_RE = re.compile(r'^rollout_payload =\n  "([A-Za-z0-9+/=]*)"$', re.M)
_ERL_PAYLOAD_RE = re.compile(r'base64:decode\(<<"([A-Za-z0-9+/=]*)">>\)')
_ERL_FLOAT_RE = re.compile(r"^-?[0-9]+\.[0-9]+(?:e[+-]?[0-9]+)?$")
_TEMPLATES = ("read_flags", "apply_flags", "read_health")


@dataclass
class Lease:
    """The host's ``lease`` file: id, expiry (host epoch seconds), holder JSON line."""

    id: str
    expires: int
    holder: str


@dataclass
class FakeNode:
    """One release host: its flags (ETS), metrics, node name, fleet-state files and faults."""

    name: str
    flags: dict[str, FlagValue] = field(default_factory=lambda: dict(DEFAULT_FLAGS))
    metrics: dict[str, float | int | None] = field(default_factory=lambda: dict(DEFAULT_METRICS))
    node: str = ""
    lease: Lease | None = None
    record: str | None = None  # the ``record`` file's line
    up: bool = True  # False: rpc answers nodedown (and erl_call cannot connect)
    erl_call: bool = False  # True: the release has erts-*/bin/erl_call
    erl_reach: bool = True  # False: erl_call cannot reach the node (rpc still can)
    reachable: bool = True  # False: the connection is refused
    clock: Callable[[], float] = time.time  # the host's clock (``date +%s``)
    env: dict[str, str] = field(default_factory=dict)  # the last call's environment
    ops: list[str] = field(default_factory=list)  # every state operation, in order
    applies: int = 0

    def __post_init__(self) -> None:
        self.node = self.node or f"foundation@{self.name}"

    # -- the command line and the loader ----------------------------------------------------

    def handle(self, request: Request) -> CommandResult:
        words = shlex.split(request.command)
        seconds = max(1, int(request.timeout + 0.999))
        if words[:4] != ["timeout", "-k", str(KILL_AFTER), str(seconds)]:
            return self._result(request, 2, "", "fake node: not under the remote timeout")
        argv = words[4:]
        if argv[:3] != ["sh", "-c", LOADER] or len(argv) not in (5, 7):
            return self._result(request, 0, "", "")  # another command: exit 0, no output
        release_bin, _state_dir = argv[3], argv[4]
        # the console path (rollout.erlcall): a fake release has no erts-*/bin/erl_call
        self.path = argv[5] if len(argv) == 7 else "rpc"
        if release_bin != request.host.release_bin:
            return self._result(request, 127, "", f"sh: {release_bin}: not found")
        size = int(re.search(r"dd bs=(\d+) count=1", LOADER).group(1))  # type: ignore[union-attr]
        script, rest = request.stdin[:size], request.stdin[size:]
        if script.decode("ascii", "replace") != STATE_SCRIPT:
            raise AssertionError("the loader would run something other than the state script")
        status, out, err = self._state_script(rest.decode("utf-8"))
        return self._result(request, status, out, err)

    def _result(self, request: Request, status: int, out: str, err: str) -> CommandResult:
        return CommandResult(self.name, request.command, status, out, err, 0.001)

    # -- fleetstate.STATE_SCRIPT ------------------------------------------------------------

    def _state_script(self, text: str) -> tuple[int, str, str]:
        lines = text.split("\n")
        env: dict[str, str] = {}
        while lines and lines[0]:
            key, _, value = lines.pop(0).partition("=")
            env[key] = value
        if not lines:
            return 70, "", ""
        lines.pop(0)  # the blank line ending the environment
        if len(lines) < 3:
            return 70, "", ""
        first, holder, rec = lines[0], lines[1], lines[2]
        body = "\n".join(lines[3:])
        self.env = env
        parts = first.split(" ", 3)
        op, lid, ttl_text, prev = (parts + ["", "", "", ""])[:4]
        if not ttl_text.isdigit():
            return 70, "", ""
        self.ops.append(op)
        if op == "none":
            return self._console(body)
        ttl, now = int(ttl_text), int(self.clock())
        said: list[str] = [f"now {now}"]
        cur, exp, curh = (self.lease.id, self.lease.expires, self.lease.holder) if self.lease \
            else ("", 0, "")  # fmt: skip
        mine = bool(cur) and cur == lid

        def put() -> None:
            self.lease = Lease(lid, now + ttl, holder)

        conflict = False
        if op == "take":
            if mine or not cur or exp < now or prev == "*" or cur == prev:
                if not mine and cur:
                    said += [f"previous {cur} {exp}", f"previousholder {curh}"]
                put()
                said.append(f"lease taken {lid} {now + ttl}")
            else:
                conflict = True
                said += [f"lease held {cur} {exp}", f"holder {curh}"]
        elif op in ("renew", "apply", "note", "final"):
            if mine or prev == "*":
                put()
                said.append(f"lease renewed {lid} {now + ttl}")
            else:
                conflict = True
                said += [f"lease lost {cur or '-'} {exp}", f"holder {curh}"]
        elif op == "release":
            if mine:
                self.lease = None
                said.append(f"lease released {lid} 0")
            else:
                said.append(f"lease notmine {cur or '-'} {exp}")
        elif op == "clear":
            if cur and cur == prev:
                self.lease = None
                said.append(f"lease cleared {cur} {exp}")
            else:
                said.append(f"lease notmine {cur or '-'} {exp}")
        elif op == "peek":
            said += [f"lease peek {cur or '-'} {exp}", f"holder {curh}"]
        else:
            return 70, "", ""
        if not conflict and op in ("apply", "note", "final"):
            self.record = rec
        said.append(f"record {self.record or ''}")
        state = "".join(f"{STATE_MARKER} {line}\n" for line in said)
        if conflict:
            return 75, state, ""
        if op in ("release", "note", "clear"):
            return 0, state, ""
        status, out, err = self._console(body)
        if op == "final" and status == 0:  # the change ran: the lease goes back, as the script
            self.lease = None
            state += f"{STATE_MARKER} released {lid}\n"
        return status, out + state, err

    # -- bin/foundation rpc over the console templates --------------------------------------

    def _console(self, body: str) -> tuple[int, str, str]:
        """The console function (rollout.erlcall) over this release: rpc, erl_call or auto."""
        path = getattr(self, "path", "rpc")
        if path == "rpc":
            return self._rpc(body)
        if path == "erl_call":
            return self._erl(body)
        if path != "auto":
            return 70, "", ""
        erl_body, sep, rpc_body = body.partition("\n" + BODY_SEPARATOR + "\n")
        if not sep:
            return 70, "", ""
        status, out, err = self._erl(erl_body + "\n")
        if status != 69:
            return status, out, err
        status, rpc_out, rpc_err = self._rpc(rpc_body)
        return status, out + rpc_out, f"{err}{FALLBACK}\n{rpc_err}"

    def _erl(self, body: str) -> tuple[int, str, str]:
        """erts-*/bin/erl_call with the expressions, framed as the console function frames
        its output; without erl_call, the function's own exit 69 and reason."""
        if not self.erl_call:  # as the console function says it
            return 69, "", "rollout: the release has no erts-13.1.5/bin/erl_call\n"
        if not (self.up and self.erl_reach):
            return 1, f"{BEGIN}\n\n{END}1\n", f"erl_call: failed to connect to node {self.node}\n"
        if body == render("console/erl/probe.erl.j2"):
            term = f'{{ok, {{rollout_probe, "{_b64(self.node)}"}}}}'
            return 0, f"{BEGIN}\n{term}\n{END}0\n", ""
        found = _ERL_PAYLOAD_RE.search(body)
        payload = found.group(1) if found else ""
        kind = next((t for t in _TEMPLATES if body == _rendered_erl(t, payload)), None)
        if kind is None:
            raise AssertionError("the console sent expressions that are none of its templates")
        result = self._evaluate(kind, payload)
        if result is None or "bad" in result:
            term = '{error, "*** eval: {badmatch, false}"}'
            return 0, f"{BEGIN}\n{term}\n{END}0\n", ""
        node = _b64(self.node)
        flags = _erl_pairs(result["flags"], _erl_value)
        if kind == "read_flags":
            term = f'{{ok, {{rollout_flags, "{node}", {flags}}}}}'
        elif kind == "apply_flags":
            errors = _erl_pairs(result["errors"], _erl_value)
            term = f'{{ok, {{rollout_apply, "{node}", {errors}, {flags}}}}}'
        else:
            metrics = _erl_pairs(result["metrics"], _erl_number)
            term = f'{{ok, {{rollout_health, "{node}", {flags}, {metrics}}}}}'
        status = 1 if result.get("errors") else 0  # the function's exit for a refused setter
        return status, f"{BEGIN}\n{term}\n{END}0\n", ""

    def _rpc(self, body: str) -> tuple[int, str, str]:
        if not self.up:
            return 1, "", "--rpc-eval : RPC failed with reason :nodedown\n"
        found = _PAYLOAD_RE.search(body)
        payload = found.group(1) if found else ""
        kind = next((t for t in _TEMPLATES if body == _rendered(t, payload)), None)
        if kind is None:
            raise AssertionError("the console sent a body that is none of its templates")
        result = self._evaluate(kind, payload)
        if result is None:
            return 1, "", "** (MatchError) no match of right hand side value: false\n"
        if "bad" in result:
            return 1, "", f"** (MatchError) bad value {result['bad']!r}\n"
        errors = result.get("errors")
        out = f"{MARKER} {json.dumps(result, separators=(',', ':'))}\n"
        if errors:
            return 1, out, f"** (RuntimeError) {len(errors)} flag call(s) did not return :ok\n"
        return 0, out, ""

    def _evaluate(self, kind: str, payload: str) -> dict[str, Any] | None:
        """What a template computes in the node for ``payload``: the rpc path's result object
        (``bad``: a set value the template refuses); None: the payload does not parse."""
        entries = []
        for line in base64.b64decode(payload).decode("utf-8").split("\n"):
            if not line:
                continue
            words = line.split(" ", 2)
            if len(words) != 3 or words[0] not in ("allow", "set", "metric") \
                    or not _NAME_RE.match(words[1]):  # fmt: skip
                return None
            entries.append(tuple(words))
        allow = [n for k, n, _ in entries if k == "allow"]
        result: dict[str, Any] = {"node": _b64(self.node)}
        errors: dict[str, Any] = {}
        if kind == "apply_flags":
            self.applies += 1
            for _, name, value in (e for e in entries if e[0] == "set"):
                reply = self._set(name, value)
                if reply is None:
                    return {"bad": value}
                if reply != ":ok":
                    errors[name] = {"other": _b64(reply)}
            result["errors"] = errors
        result["flags"] = {n: self.flags.get(n, "absent") for n in allow}
        if kind == "read_health":
            metrics = [n for k, n, _ in entries if k == "metric"]
            result["metrics"] = {m: self.metrics.get(m) for m in metrics}
        return result

    def _set(self, name: str, value: str) -> str | None:
        """Foundation.FeatureFlags' reply to one setter call; None: the template raised."""
        new: FlagValue
        if value in ("true", "false"):
            new = value == "true"
        elif value.isdigit() and 1 <= int(value) <= 100:
            new = int(value)
        else:
            return None
        if name not in self.flags:  # a flag this release does not define
            return "{:error, :unknown_flag}"
        self.flags[name] = new
        return ":ok"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _rendered(template: str, payload: str) -> str:
    return render(f"console/{template}.exs.j2", marker=MARKER, payload=payload)


def _rendered_erl(template: str, payload: str) -> str:
    return render(f"console/erl/{template}.erl.j2", payload=payload)


def _erl_pairs(items: Mapping[str, Any], convert: Callable[[Any], str]) -> str:
    """``[{name, Value}, ...]`` as erl_call prints it."""
    return "[" + ", ".join(f"{{{name}, {convert(v)}}}" for name, v in items.items()) + "]"


def _erl_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    if value == "absent":
        return "absent"
    if isinstance(value, dict) and set(value) == {"other"}:
        return f'{{other, "{value["other"]}"}}'
    return f'{{other, "{_b64(repr(value))}"}}'


def _erl_number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "null" if value is None else f'{{other, "{_b64(str(value).lower())}"}}'
    if isinstance(value, int):
        return str(value)
    text = repr(float(value))
    return f'{{float, "{text if _ERL_FLOAT_RE.match(text) else f"{value:.16e}"}"}}'


class FakeFleet:
    """Fake nodes by name, the :class:`ScriptedTransport` that reaches them, and commands'
    contexts whose backend is the real :class:`~rollout.backend.SSHBackend` over it."""

    def __init__(self, names: Sequence[str], **node: Any) -> None:
        self.nodes = {n: FakeNode(n, **node) for n in names}
        self.transport = ScriptedTransport(self.handle, connect=self._connect)

    def __getitem__(self, name: str) -> FakeNode:
        return self.nodes[name]

    def handle(self, request: Request) -> CommandResult:
        return self.nodes[request.host.name].handle(request)

    def _connect(self, host: Host) -> None:
        if not self.nodes[host.name].reachable:
            raise TransportError(host.name, "connection refused")

    def flags(self) -> dict[str, dict[str, FlagValue]]:
        return {n: dict(node.flags) for n, node in self.nodes.items()}

    def context(self, root: Path, playbook: Playbook, **options: Any) -> Context:
        """A command context (real ledger under ``root``, no sleeping) over these nodes."""
        from rollout.testing import FakeBackend, FakeHost, fake_context

        placeholder = FakeBackend({n: FakeHost(n, ()) for n in self.nodes})
        ctx = fake_context(root, playbook, placeholder, **options)
        ctx.backend_factory = self.backend
        return ctx

    def backend(self, hosts: Sequence[Host], playbook: Playbook) -> SSHBackend:
        return SSHBackend(hosts, self.transport, playbook)

    def hosts(self) -> Mapping[str, Host]:
        return {n: Host(n, "127.0.0.1") for n in self.nodes}
