"""The release's remote console: render code from ``templates/console``, run it, parse it.

Code runs in the live node through one of two paths, chosen once per host per run
(:mod:`rollout.erlcall`): the release's ``erts-*/bin/erl_call`` with the Erlang expressions of
``templates/console/erl/`` (milliseconds; the default where the release has it), or
``bin/foundation rpc "$(cat)"`` with the Elixir of ``templates/console/`` (a client VM per
call; a ``mix release`` has no ``remote_console``, and ``remote`` with piped stdin evaluates
in a throwaway VM). Under ``auto`` a host's first read carries both and is the probe (one
exec: erl_call, or rpc in the same exec when the release has no erl_call); a first call
that is not a read is probed by a separate erl_call that changes nothing. The body and the
console's environment (``release_env``, e.g. the cookie) travel on stdin, never on the SSH
command line. Values never become code: flag and metric names are checked against the
playbook's allowlist and a strict pattern, then travel with the desired values as one base64
literal that the template decodes and checks again. Every setter reply is checked; the rpc
path's node prints one ``ROLLOUT-RESULT/1 {json}`` line, the erl_call path's answers one term
of an exact shape, and anything else is a :class:`ConsoleError`.

What a call sends (the templates, the payload) and the values it gives back are
:mod:`rollout.consolecode`; reading its output (the result line, the reading, the failure and
its hint) is :mod:`rollout.consolereply`. :class:`RemoteConsole` is the call itself: the path,
the fleet state around it, the deadline and the order the output is judged in.

It stays one module (about 400 lines): choosing a host's path, folding the probe into its
first read, running the call with the fleet state around it and judging the output in order
are one sequence over one host's session and cached path; split, each part would reach into
the others' state.
"""

from __future__ import annotations

from .consolecode import (
    MARKER,
    ApplyResult,
    Change,
    FlagReading,
    HealthReading,
    encode_payload,
    render,
)
from .consolereply import (
    console_failure,
    erl_failure,
    find_result,
    flag_reading,
    garbage,
    probe_timeout,
    state_failure,
    unreached,
)
from .erlcall import (
    AUTO,
    UNAVAILABLE_STATUS,
    ConsolePath,
    ConsolePaths,
    Kind,
    PathChoice,
    Reply,
    fallback_reason,
    fold,
    judge,
    split,
)
from .errors import CommandTimeout, ConsoleError
from .flagvalues import node_text
from .fleetrecord import HostState, Record, parse_state
from .fleetstate import CONFLICT_STATUS, LOADER, FleetSide, LeaseConflict, Op, header, script_stdin
from .models import ConsoleMode, FlagState
from .transport.base import CommandResult, Session


class RemoteConsole:
    """Runs console templates on one host through its session."""

    def __init__(
        self,
        session: Session,
        *,
        allow: tuple[str, ...],
        metrics: tuple[str, ...] = (),
        timeout: float = 60.0,
        health_timeout: float | None = None,
        side: FleetSide | None = None,
        state_dir: str | None = None,
        paths: ConsolePaths | None = None,
    ) -> None:
        self.session = session
        self.paths = paths if paths is not None else ConsolePaths()
        self._pending: PathChoice | None = None  # a fallback settled once an rpc call works
        self._choice: PathChoice | None = None  # the path of the last call
        self.side = side
        self.state_dir = state_dir or session.host.state_dir
        self.health_timeout = health_timeout or timeout
        self.allow = allow
        self.metrics = metrics
        self.timeout = timeout

    @property
    def host(self) -> str:
        return self.session.host.name

    def read_flags(self, op: Op | None = None) -> FlagReading:
        payload = encode_payload(self.allow)
        if op is None:
            self._retake()
            op = self.side.op_read if self.side else Op.NONE
        data, fleet = self._call("read_flags", payload, Kind.READ, op=op)
        return flag_reading(self.host, self.allow, data, fleet, self._choice)

    def _retake(self) -> None:
        """Take back the lease a final apply gave back, before the run calls the host again
        (an undo after a later host failed): only while the host still holds the record this
        run left there, so nobody's change in between is overwritten."""
        side = self.side
        if side is None or side.lease_id is None or self.host not in side.given_back:
            return
        expected = side.given_back[self.host]
        state = self.read_flags(Op.TAKE).state
        if state is None or state.raw_record not in expected:
            raise ConsoleError(
                self.host,
                "the host's fleet record changed after this run gave its lease back; "
                "this run does not change it again",
                hint="`invoke status` shows who changed the host",
            )

    def apply(self, state: FlagState, change: Change | None = None) -> ApplyResult:
        payload = encode_payload(self.allow, state)
        record = None
        op = Op.NONE
        if self.side is not None and self.side.lease_id is not None:
            change = change or Change("change", None)
            self._retake()
            record = self.side.record_for(self.host, change.action, change.phase)
            op = Op.APPLY
            if change.last:
                op = Op.FINAL
                self.side.giving_back(self.host, record)
        data, fleet = self._call(
            "apply_flags", payload, Kind.APPLY, allow_failure=True, op=op, record=record
        )
        errors = data.get("errors")
        if not isinstance(errors, dict):
            raise garbage(self.host, "the apply result has no errors object")
        found = {str(k): node_text(v) for k, v in errors.items()}
        if record is not None and (fleet is None or fleet.raw_record != record.to_json()):
            found["(fleet record)"] = "the host's record did not read back as written"
        reading = flag_reading(self.host, self.allow, data, fleet, self._choice)
        return ApplyResult(reading, found)

    def state_call(
        self, op: Op, record: Record | None = None, replace_id: str | None = None
    ) -> HostState:
        """A lease or record operation alone (release, note, clear): no console code runs."""
        _, fleet = self._call(
            None, "", Kind.READ, op=op, record=record, expect_result=False,
            replace_id=replace_id,
        )
        if fleet is None:
            raise garbage(self.host, "the state directory call printed no state")
        return fleet

    def health(self) -> HealthReading:
        payload = encode_payload(self.allow, metrics=self.metrics)
        op = Op.RENEW if self.side and self.side.lease_id else Op.PEEK if self.side else Op.NONE
        if op is Op.RENEW:
            self._retake()
        data, fleet = self._call(
            "read_health", payload, Kind.HEALTH, timeout=self.health_timeout, op=op
        )
        raw_metrics = data.get("metrics")
        if not isinstance(raw_metrics, dict) or set(raw_metrics) != set(self.metrics):
            raise garbage(self.host, "the health result does not list the expected metrics")
        values: dict[str, float | None] = {}
        raw: dict[str, str] = {}
        for name in self.metrics:
            value = raw_metrics[name]
            raw[name] = node_text(value)
            ok_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            values[name] = float(value) if ok_number else None
        reading = flag_reading(self.host, self.allow, data, fleet, self._choice)
        return HealthReading(reading, values, raw)

    # -- internals -------------------------------------------------------------------------

    def path(self, deadline: float | None = None) -> PathChoice:
        """This host's console path for the run: chosen (and probed, for auto) once.

        (A host's first read does not come here while the path is open: it is the probe
        itself, :meth:`_first_read`.)

        A probe that finds no erl_call in the release settles rpc for the run. One that
        reaches erl_call but not the node gives rpc for this call only, and settles it once
        an rpc call works (erl_call cannot reach a node that rpc can); while neither works
        (the node is down) every call probes again, so a node that comes back gets erl_call.
        A probe that outlives its deadline is this call's timeout (rpc would wait as long).
        """
        chosen = self.paths.get(self.host)
        if chosen is not None:
            return chosen
        mode = self.paths.mode(self.session.host.console)
        if mode is ConsoleMode.RPC:
            return self.paths.set(self.host, PathChoice(ConsolePath.RPC))
        if mode is ConsoleMode.ERL_CALL:
            return self.paths.set(self.host, PathChoice(ConsolePath.ERL_CALL))
        choice, settled = self._probe(deadline or self.timeout)
        if settled:
            return self.paths.set(self.host, choice)
        self._pending = choice
        return choice

    def _probe(self, deadline: float) -> tuple[PathChoice, bool]:
        """One erl_call round trip that changes nothing: does it reach this host's node?"""
        body = render("console/erl/probe.erl.j2")
        result = self._run(body, ConsolePath.ERL_CALL.value, Op.NONE, None, None, deadline)
        reply = judge(result.stdout, Kind.PROBE)
        if result.timed_out or reply.status == 142:
            raise probe_timeout(self.host, deadline)
        if reply.data is not None and result.exit_status == 0:
            return PathChoice(ConsolePath.ERL_CALL), True
        if reply.status is None and result.exit_status == UNAVAILABLE_STATUS:
            why = result.stderr.strip().removeprefix("rollout: ") or "erl_call is unavailable"
            return PathChoice(ConsolePath.RPC, why[:300]), True
        return unreached(result, reply), False

    def _run(
        self,
        body: str,
        path: str,
        op: Op,
        record: Record | None,
        replace_id: str | None,
        deadline: float,
    ) -> CommandResult:
        host = self.session.host
        env = "".join(f"{name}={value.reveal()}\n" for name, value in host.release_env)
        side = self.side
        lease_id = side.lease_id if side else None
        head = header(op, lease_id, side.ttl if side else 0, replace_id,
                      side.holder if side else None, record)  # fmt: skip
        stdin = (script_stdin() + env + "\n" + head + body).encode("utf-8")
        # erl_call's own deadline passes a second before the remote `timeout` kills the call
        inner = str(max(1, int(deadline) - 1))
        argv = ["sh", "-c", LOADER, host.release_bin, self.state_dir, path, inner]
        return self.session.run(argv, stdin=stdin, timeout=deadline)

    def _call(
        self,
        template: str | None,
        payload: str,
        kind: Kind,
        *,
        allow_failure: bool = False,
        timeout: float | None = None,
        op: Op = Op.NONE,
        record: Record | None = None,
        expect_result: bool = True,
        replace_id: str | None = None,
    ) -> tuple[dict[str, object], HostState | None]:
        side = self.side
        if op in (Op.TAKE, Op.PEEK) and side is not None and side.lease_id is None:
            op = Op.PEEK
        if replace_id is None and side is not None and op in (Op.TAKE, Op.APPLY, Op.FINAL):
            replace_id = side.replace.get(self.host)
            if op is not Op.TAKE and replace_id != "*":
                replace_id = None
        if record is not None:
            record.to_json()  # a record too large is refused before any host is contacted
        deadline = timeout or self.timeout
        if template is None:
            result = self._run("", ConsolePath.RPC.value, op, record, replace_id, deadline)
            return self._answer(result, PathChoice(ConsolePath.RPC), kind, deadline,
                                allow_failure, expect_result)  # fmt: skip
        if kind is Kind.READ and self._folds():
            return self._first_read(template, payload, op, record, replace_id, deadline)
        choice = self.path(deadline)
        return self._send(template, payload, choice, kind, op, record, replace_id, deadline,
                          allow_failure)  # fmt: skip

    def _send(
        self,
        template: str,
        payload: str,
        choice: PathChoice,
        kind: Kind,
        op: Op,
        record: Record | None,
        replace_id: str | None,
        deadline: float,
        allow_failure: bool = False,
    ) -> tuple[dict[str, object], HostState | None]:
        """One console call through ``choice``'s path, judged."""
        if choice.path is ConsolePath.ERL_CALL:
            body = render(f"console/erl/{template}.erl.j2", payload=payload)
        else:
            body = render(f"console/{template}.exs.j2", marker=MARKER, payload=payload)
        result = self._run(body, choice.path.value, op, record, replace_id, deadline)
        return self._answer(result, choice, kind, deadline, allow_failure)

    def _folds(self) -> bool:
        """This call may fold the probe in: the host's path is not settled yet, and auto."""
        return self.paths.get(self.host) is None and (
            self.paths.mode(self.session.host.console) is ConsoleMode.AUTO
        )

    def _first_read(
        self,
        template: str,
        payload: str,
        op: Op,
        record: Record | None,
        replace_id: str | None,
        deadline: float,
    ) -> tuple[dict[str, object], HostState | None]:
        """A read on a host whose path is not settled, with the probe folded in: one exec
        that carries both bodies (:func:`rollout.erlcall.fold`) and settles the path as the
        probe would have. A release without erl_call runs the rpc body in the same exec
        (rpc settled, with the probe's reason); erl_call answering settles erl_call (and a
        bad reply is then this read's failure, as after a probe that worked). erl_call
        killed by its own deadline is this call's timeout, as a probe's. Any other erl_call
        failure is what a probe would judge: with no output (it did not reach the node)
        it is the probe's answer as is, and rpc runs for this call; with output, the probe
        itself is asked, then the call goes on as after it (a read changes nothing, so
        running it twice is safe)."""
        body = fold(
            render(f"console/erl/{template}.erl.j2", payload=payload),
            render(f"console/{template}.exs.j2", marker=MARKER, payload=payload),
        )
        result = self._run(body, AUTO, op, record, replace_id, deadline)
        why = fallback_reason(result.stderr)
        if why is not None:  # the release has no erl_call: rpc answered, in this exec
            choice = self.paths.set(self.host, PathChoice(ConsolePath.RPC, why[:300]))
            return self._answer(result, choice, Kind.READ, deadline)
        if result.timed_out:
            raise probe_timeout(self.host, deadline)
        erl = judge(result.stdout, Kind.READ)
        if erl.status == 0:  # erl_call reached the node: what a probe that worked settles
            choice = self.paths.set(self.host, PathChoice(ConsolePath.ERL_CALL))
            return self._answer(result, choice, Kind.READ, deadline)
        # the exec ran the state script whatever erl_call did: its lease is seen first (the
        # run's end gives it back), and a lease conflict or a state failure ends the call
        self._fleet(result, erl)
        if erl.status == 142:
            raise probe_timeout(self.host, deadline)
        text = split(result.stdout)[0]
        if erl.status is not None and not (text or "").strip():
            choice = unreached(result, erl)  # as the probe would judge it
            self._pending = choice
        else:
            choice = self.path(deadline)
        if choice.path is ConsolePath.ERL_CALL:  # the probe worked: this read failed
            self._choice = choice
            raise erl_failure(self.host, result, erl.why)
        return self._send(template, payload, choice, Kind.READ, op, record, replace_id,
                          deadline)  # fmt: skip

    def _fleet(self, result: CommandResult, erl: Reply | None) -> HostState | None:
        """The host's fleet state after the call, seen; a lease conflict or a failure of the
        state directory raises."""
        side = self.side
        # on the erl_call path the state lines are only those after erl_call's own output
        fleet = parse_state(erl.rest if erl is not None else result.stdout)
        if fleet is not None and side is not None:
            side.seen(self.host, fleet)
        if result.exit_status == CONFLICT_STATUS and fleet is not None:
            raise LeaseConflict(self.host, fleet)
        if fleet is not None and fleet.error:
            raise state_failure(self.host, fleet.error)
        return fleet

    def _answer(
        self,
        result: CommandResult,
        choice: PathChoice,
        kind: Kind,
        deadline: float,
        allow_failure: bool = False,
        expect_result: bool = True,
    ) -> tuple[dict[str, object], HostState | None]:
        """Judge one call's output, in order: the deadline, the fleet state, the console."""
        self._choice = choice
        if result.timed_out:
            raise CommandTimeout(
                self.host,
                f"the remote console did not answer within {deadline:.0f}s and was killed; "
                "the outcome is unknown until the host is read back",
            )
        erl = judge(result.stdout, kind) if choice.path is ConsolePath.ERL_CALL else None
        fleet = self._fleet(result, erl)
        if not expect_result:
            if result.exit_status != 0:
                raise console_failure(self.host, self.session.host.release_bin, result)
            return {}, fleet
        if erl is not None:
            if erl.status == 142:
                raise CommandTimeout(
                    self.host,
                    f"the remote console did not answer within {max(1, int(deadline) - 1)}s "
                    "(erl_call's own deadline); the outcome is unknown until the host is read "
                    "back",
                )
            failed_apply = allow_failure and result.exit_status == 1 and erl.status == 0
            if erl.data is None or (result.exit_status != 0 and not failed_apply):
                raise erl_failure(self.host, result, erl.why)
            return erl.data, fleet
        data = find_result(result.stdout)
        if data is None:
            raise console_failure(self.host, self.session.host.release_bin, result)
        if result.exit_status != 0 and not allow_failure:
            raise console_failure(self.host, self.session.host.release_bin, result)
        if self._pending is choice:  # rpc works where erl_call did not: settled for the run
            self.paths.set(self.host, choice)
        return data, fleet
