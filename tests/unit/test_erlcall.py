"""The erl_call console path at the console seam: the real state script and console function
(real sh) around a fake release whose ``erts-*/bin/erl_call`` records how it was called and
answers canned replies, and the strict judging of what erl_call prints."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from rollout.console import RemoteConsole
from rollout.erlcall import (
    ConsolePath,
    ConsolePaths,
    Kind,
    PathChoice,
    console_override,
    judge,
)
from rollout.erlterm import Atom, TermError, parse
from rollout.errors import CommandTimeout, ConsoleError, UsageError
from rollout.fleetrecord import Holder, new_lease_id
from rollout.fleetstate import FleetSide, Op
from rollout.models import ConsoleMode, FlagState, Host, Secret
from rollout.transport.base import CommandResult

FLAGS = ("use_a", "use_b")
NODE = base64.b64encode(b"foundation_h1@127.0.0.1").decode()
COOKIE = "SECRETCOOKIE42"
READ = f'{{ok, {{rollout_flags, "{NODE}", [{{use_a, true}}, {{use_b, 10}}]}}}}'
PROBE = f'{{ok, {{rollout_probe, "{NODE}"}}}}'
RPC_LINE = 'ROLLOUT-RESULT/1 {"node":"' + NODE + '","flags":{"use_a":false,"use_b":false}}'

#: erl_call stand-in: logs its argv, HOME, cookie file (content, mode) and environment
#: cookie, keeps the expressions, and answers replies/<tag> (exit replies/<tag>.rc).
FAKE_ERL_CALL = r"""#!/bin/sh
top=$(dirname "$0")/../..
expr=$(cat)
{
  printf 'argv:'; printf ' %s' "$@"; echo
  echo "home:$HOME"
  echo "cookie:$(cat "$HOME/.erlang.cookie")"
  echo "mode:$(stat -c %a "$HOME/.erlang.cookie")"
  echo "envcookie:${RELEASE_COOKIE-unset}"
} >> "$top/calls"
printf '%s\n' "$expr" > "$top/last-expr"
for tag in rollout_probe rollout_apply rollout_health rollout_flags; do
  case $expr in *"{$tag,"*) break;; esac
done
[ -f "$top/replies/$tag" ] && printf '%s' "$(cat "$top/replies/$tag")"
exit "$(cat "$top/replies/$tag.rc" 2>/dev/null || echo 0)"
"""

#: bin/foundation stand-in: `rpc` answers one canned result line and counts its calls.
FAKE_BIN = f"""#!/bin/sh
echo rpc >> "$(dirname "$0")/../rpc-calls"
[ "$1" = rpc ] && echo '{RPC_LINE}'
"""


class LocalSession:
    """The Session seam, run on this machine (the command as sshd would run it, minus SSH)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.calls = 0

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float = 60.0,
        max_output: int = 1 << 20,
    ) -> CommandResult:
        self.calls += 1
        done = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=timeout + 5)
        return CommandResult(
            self.host.name,
            " ".join(argv),
            done.returncode,
            done.stdout.decode(),
            done.stderr.decode(),
            0.0,
        )

    def close(self) -> None:
        pass


def make_release(root: Path, *, erl_call: bool = True, env_sh: str = "") -> Path:
    """A release layout: bin/foundation, releases/{start_erl.data,COOKIE,0.1.0/env.sh}."""
    (root / "bin").mkdir(parents=True)
    (root / "releases" / "0.1.0").mkdir(parents=True)
    (root / "releases" / "start_erl.data").write_text("13.1.5 0.1.0")  # no newline, as mix
    (root / "releases" / "COOKIE").write_text(COOKIE)
    (root / "releases" / "0.1.0" / "env.sh").write_text(env_sh)
    (root / "replies").mkdir()
    binary = root / "bin" / "foundation"
    binary.write_text(FAKE_BIN)
    binary.chmod(0o755)
    if erl_call:
        (root / "erts-13.1.5" / "bin").mkdir(parents=True)
        fake = root / "erts-13.1.5" / "bin" / "erl_call"
        fake.write_text(FAKE_ERL_CALL)
        fake.chmod(0o755)
    reply(root, "rollout_probe", PROBE)
    reply(root, "rollout_flags", READ)
    return binary


def reply(root: Path, tag: str, text: str, rc: int = 0) -> None:
    (root / "replies" / tag).write_text(text)
    (root / "replies" / f"{tag}.rc").write_text(str(rc))


def console(
    root: Path,
    *,
    mode: ConsoleMode = ConsoleMode.AUTO,
    env: tuple[tuple[str, Secret], ...] = (),
    paths: ConsolePaths | None = None,
    side: FleetSide | None = None,
    metrics: tuple[str, ...] = (),
) -> tuple[RemoteConsole, LocalSession]:
    host = Host(
        "h1", "127.0.0.1", release_bin=str(root / "bin" / "foundation"), release_env=env,
        console=mode,
    )  # fmt: skip
    session = LocalSession(host)
    return RemoteConsole(
        session, allow=FLAGS, metrics=metrics, timeout=20, side=side, paths=paths
    ), session


def calls(root: Path) -> list[str]:
    path = root / "calls"
    return path.read_text().splitlines() if path.exists() else []


def rpc_calls(root: Path) -> int:
    path = root / "rpc-calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


# -- the shell side ------------------------------------------------------------------------


def test_read_goes_through_erl_call_with_the_cookie_only_in_a_private_file(
    tmp_path: Path,
) -> None:
    """auto settles erl_call with its first read (the probe folded in), then reads through
    erl_call: the node and deadline on its command line, the cookie only in
    $HOME/.erlang.cookie (0600), not in its environment, and that HOME is gone after the
    call."""
    make_release(tmp_path)
    con, session = console(tmp_path)
    reading = con.read_flags()
    assert reading.console == "erl_call" and reading.console_fallback is None
    assert reading.flags == {"use_a": True, "use_b": 10}
    assert reading.node == "foundation_h1@127.0.0.1"
    log = calls(tmp_path)
    argv = [line for line in log if line.startswith("argv:")]
    assert argv == ["argv: -sname foundation -timeout 19 -e"] * 1  # the read, probe folded in
    assert all(COOKIE not in line for line in argv)
    assert log.count(f"cookie:{COOKIE}") == 1 and log.count("mode:600") == 1
    assert log.count("envcookie:unset") == 1
    homes = {line[5:] for line in log if line.startswith("home:")}
    assert len(homes) == 1 and not any(Path(h).exists() for h in homes)
    assert rpc_calls(tmp_path) == 0
    con.read_flags()
    assert session.calls == 2  # no probe of its own: each read is one call


def test_release_env_cookie_and_env_sh_node_name_are_used(tmp_path: Path) -> None:
    """RELEASE_COOKIE from release_env wins over releases/COOKIE; env.sh's RELEASE_NODE and
    RELEASE_DISTRIBUTION=name become erl_call's -name."""
    make_release(
        tmp_path,
        env_sh='export RELEASE_DISTRIBUTION=name\nexport RELEASE_NODE="app_h1@10.0.0.5"\n',
    )
    con, _ = console(tmp_path, env=(("RELEASE_COOKIE", Secret("FROMINVENTORY")),))
    con.read_flags()
    log = calls(tmp_path)
    assert "argv: -name app_h1@10.0.0.5 -timeout 19 -e" in log
    assert "cookie:FROMINVENTORY" in log and "envcookie:unset" in log


def test_a_release_without_erl_call_falls_back_to_rpc_with_the_reason(tmp_path: Path) -> None:
    """auto on a release without erts-*/bin/erl_call reads through rpc, records why, and
    does not probe again."""
    make_release(tmp_path, erl_call=False)
    paths = ConsolePaths()
    con, session = console(tmp_path, paths=paths)
    reading = con.read_flags()
    assert reading.console == "rpc"
    assert reading.console_fallback == "the release has no erts-13.1.5/bin/erl_call"
    assert reading.flags == {"use_a": False, "use_b": False}
    choice = paths.get("h1")
    assert choice is not None and choice.path is ConsolePath.RPC
    con2, session2 = console(tmp_path, paths=paths)
    con2.read_flags()
    assert session2.calls == 1 and rpc_calls(tmp_path) == 2


def test_forced_erl_call_without_erl_call_fails_saying_what_to_set(tmp_path: Path) -> None:
    """rollout_console: erl_call on a release without it is a console error naming the fix."""
    make_release(tmp_path, erl_call=False)
    con, _ = console(tmp_path, mode=ConsoleMode.ERL_CALL)
    with pytest.raises(ConsoleError) as caught:
        con.read_flags()
    assert "erts-13.1.5/bin/erl_call" in caught.value.detail
    assert "rollout_console" in (caught.value.hint or "")
    assert rpc_calls(tmp_path) == 0


def test_rpc_mode_and_the_override_never_probe(tmp_path: Path) -> None:
    """rollout_console: rpc, or ROLLOUT_CONSOLE=rpc over auto, runs rpc with no erl_call."""
    make_release(tmp_path)
    for con, _ in (
        console(tmp_path, mode=ConsoleMode.RPC),
        console(tmp_path, paths=ConsolePaths(console_override({"ROLLOUT_CONSOLE": "rpc"}))),
    ):
        assert con.read_flags().console == "rpc"
    assert calls(tmp_path) == [] and rpc_calls(tmp_path) == 2
    with pytest.raises(UsageError):
        console_override({"ROLLOUT_CONSOLE": "ssh"})


def test_a_node_erl_call_cannot_reach_uses_rpc_and_settles_once_rpc_works(
    tmp_path: Path,
) -> None:
    """A probe that fails to connect (exit 1) falls back to rpc for that call; rpc answering
    settles the fallback, so the next call does not probe. (The first read's own erl_call,
    the probe folded in, fails to connect the same way: nothing printed, exit 1.)"""
    make_release(tmp_path)
    reply(tmp_path, "rollout_probe", "", rc=1)
    reply(tmp_path, "rollout_flags", "", rc=1)
    paths = ConsolePaths()
    con, _ = console(tmp_path, paths=paths)
    reading = con.read_flags()
    assert reading.console == "rpc" and "exited 1" in (reading.console_fallback or "")
    console(tmp_path, paths=paths)[0].read_flags()
    assert len([c for c in calls(tmp_path) if c.startswith("argv:")]) == 1


def test_auto_without_erl_call_reads_in_one_exec_with_the_probes_reason(
    tmp_path: Path,
) -> None:
    """auto's first read on a release without erl_call is ONE exec: the erl_call branch
    exits 69 with its reason, the same exec runs the rpc body, and rpc is settled with the
    reason a separate probe recorded; the lease header rides on that exec."""
    make_release(tmp_path, erl_call=False)
    paths = ConsolePaths()
    holder = Holder("bob", "laptop", 1, None, "r-1", "deploy", "lg-1", "/l", 1.0)
    side = FleetSide("otp", holder, 60, lease_id=new_lease_id(), op_read=Op.TAKE)
    con, session = console(tmp_path, paths=paths, side=side)
    reading = con.read_flags()
    assert session.calls == 1 and rpc_calls(tmp_path) == 1
    assert reading.console == "rpc"
    assert reading.console_fallback == "the release has no erts-13.1.5/bin/erl_call"
    assert reading.flags == {"use_a": False, "use_b": False}
    assert paths.get("h1") == PathChoice(
        ConsolePath.RPC, "the release has no erts-13.1.5/bin/erl_call"
    )
    assert reading.state is not None and reading.state.lease is not None
    assert reading.state.lease.status == "taken"
    con.read_flags()
    assert session.calls == 2 and rpc_calls(tmp_path) == 2


def test_auto_with_erl_call_settles_it_in_the_first_read(tmp_path: Path) -> None:
    """auto's first read on a release with erl_call is one erl_call exec that settles
    erl_call for the run; no rpc runs."""
    make_release(tmp_path)
    paths = ConsolePaths()
    con, session = console(tmp_path, paths=paths)
    assert con.read_flags().console == "erl_call"
    assert session.calls == 1 and rpc_calls(tmp_path) == 0
    assert paths.get("h1") == PathChoice(ConsolePath.ERL_CALL)
    assert "rollout_probe" not in (tmp_path / "last-expr").read_text()


def test_erl_calls_own_exit_69_in_auto_is_no_fallback(tmp_path: Path) -> None:
    """Only the function's "unavailable" runs the rpc body: erl_call itself exiting 69 is a
    failure the controller judges (here: not reached, so rpc for this call, pending)."""
    make_release(tmp_path)
    reply(tmp_path, "rollout_flags", "", rc=69)
    reply(tmp_path, "rollout_probe", "", rc=69)
    paths = ConsolePaths()
    con, session = console(tmp_path, paths=paths)
    reading = con.read_flags()
    assert reading.console == "rpc" and "exited 69" in (reading.console_fallback or "")
    assert session.calls == 2 and rpc_calls(tmp_path) == 1  # the folded read, then rpc
    choice = paths.get("h1")
    assert choice is not None and choice.path is ConsolePath.RPC


def test_a_failed_first_read_with_output_asks_the_probe(tmp_path: Path) -> None:
    """A first read through erl_call that printed something but failed: the probe decides
    as it did before the fold. It fails too: rpc for this call; it works: the read's
    failure."""
    make_release(tmp_path)
    reply(tmp_path, "rollout_flags", READ, rc=1)
    reply(tmp_path, "rollout_probe", "", rc=1)
    con, session = console(tmp_path)
    assert con.read_flags().console == "rpc"
    assert session.calls == 3  # the folded read, the probe, the rpc read
    reply(tmp_path, "rollout_probe", PROBE)
    con, session = console(tmp_path)
    with pytest.raises(ConsoleError):
        con.read_flags()
    assert session.calls == 2 and rpc_calls(tmp_path) == 1


def test_a_first_read_timing_out_in_erl_call_is_the_probes_timeout(tmp_path: Path) -> None:
    """erl_call's own deadline (142) in the folded read: a CommandTimeout, as a probe's, and
    no rpc runs; the path is not settled."""
    make_release(tmp_path)
    reply(tmp_path, "rollout_flags", "", rc=142)
    paths = ConsolePaths()
    con, session = console(tmp_path, paths=paths)
    with pytest.raises(CommandTimeout, match="did not answer erl_call"):
        con.read_flags()
    assert session.calls == 1 and rpc_calls(tmp_path) == 0 and paths.get("h1") is None


def test_a_first_read_timing_out_in_erl_call_still_sees_the_lease_it_took(
    tmp_path: Path,
) -> None:
    """The folded first read carries the lease header: when erl_call then outlives its own
    deadline (142), the exec still took the lease on the host, and the run must know it, so
    its end gives it back (a lease the run does not know of would stay until it expires)."""
    make_release(tmp_path)
    reply(tmp_path, "rollout_flags", "", rc=142)
    holder = Holder("bob", "laptop", 1, None, "r-1", "deploy", "lg-1", "/l", 1.0)
    side = FleetSide("otp", holder, 60, lease_id=new_lease_id(), op_read=Op.TAKE)
    con, _ = console(tmp_path, side=side)
    with pytest.raises(CommandTimeout, match="did not answer erl_call"):
        con.read_flags()
    state = side.states.get("h1")
    assert state is not None and state.lease is not None
    assert state.lease.id == side.lease_id and state.lease.status == "taken"


def test_lease_and_record_ride_on_the_erl_call_exec(tmp_path: Path) -> None:
    """With a lease, an apply through erl_call is one exec that writes the record, reads it
    back, and reports the setter replies that were not ok."""
    root = tmp_path
    make_release(root)
    holder = Holder("bob", "laptop", 1, None, "r-1", "deploy", "lg-1", "/l", 1.0)
    side = FleetSide("otp", holder, 60, lease_id=new_lease_id(), op_read=Op.TAKE)
    con, session = console(root, side=side)
    con.read_flags()
    bad = base64.b64encode(b"{:error, :unknown_flag}").decode()
    reply(root, "rollout_apply",
          f'{{ok, {{rollout_apply, "{NODE}", [{{use_b, {{other, "{bad}"}}}}], '
          "[{use_a, true}, {use_b, absent}]}}")  # fmt: skip
    before = session.calls
    result = con.apply(FlagState.of({"use_a": True, "use_b": 10}))
    assert session.calls == before + 1
    assert result.errors["use_b"] == "{:error, :unknown_flag}"
    assert result.reading.flags == {"use_a": True, "use_b": None}
    assert result.reading.state is not None and result.reading.state.record is not None
    assert "(fleet record)" not in result.errors
    expr = (root / "last-expr").read_text()
    assert "set_percentage" in expr and "use_b 10" not in expr  # the value is in the payload


def test_health_metrics_keep_floats_exact_and_refuse_non_numbers(tmp_path: Path) -> None:
    """Floats travel as text ({float, "..."}) and are read exactly; null is None."""
    make_release(tmp_path)
    reply(tmp_path, "rollout_health",
          f'{{ok, {{rollout_health, "{NODE}", [{{use_a, false}}, {{use_b, 1}}], '
          '[{error_rate, {float, "1.0e-7"}}, {restart_frequency, 3}, '
          "{latency, null}]}}")  # fmt: skip
    con, _ = console(tmp_path, metrics=("error_rate", "restart_frequency", "latency"))
    health = con.health()
    assert health.metrics == {"error_rate": 1e-7, "restart_frequency": 3.0, "latency": None}
    assert health.raw["error_rate"] == "1e-07"


def test_erl_calls_own_deadline_is_a_timeout(tmp_path: Path) -> None:
    """erl_call killed by its own -timeout (SIGALRM, 142) is a CommandTimeout: unknown."""
    make_release(tmp_path)
    reply(tmp_path, "rollout_flags", "", rc=142)
    con, _ = console(tmp_path)
    with pytest.raises(CommandTimeout):
        con.read_flags()


@pytest.mark.parametrize(
    ("text", "rc"),
    [
        ('{error, "*** eval: {badmatch, x}"}', 0),
        ("{badrpc, nodedown}", 0),
        ("{ok, <0.123.0>}", 0),
        ("{ok, #Bin<1,2,3>}", 0),
        ("hello", 0),
        ("", 0),
        (READ + " trailing", 0),
        (READ, 1),
        (READ.replace("use_b, 10", "use_b, <<1>>"), 0),
        (READ.replace("use_b, 10", "'Use_b', 10"), 0),
        (READ.replace("use_b, 10", "use_a, 10"), 0),
        (READ.replace(NODE, 'x" junk "'), 0),
        (READ.replace("rollout_flags", "rollout_health"), 0),
        ('{ok, {rollout_flags, "' + NODE + '", [{use_a, "on"}, {use_b, 1}]}}', 0),
    ],
)
def test_hostile_or_odd_replies_are_failures(tmp_path: Path, text: str, rc: int) -> None:
    """An error reply, a pid, a binary, garbage with exit 0, a bad name, a duplicate flag, a
    node name that is not base64, another shape or a non-zero exit: a ConsoleError."""
    make_release(tmp_path)
    reply(tmp_path, "rollout_flags", text, rc=rc)
    con, _ = console(tmp_path)
    with pytest.raises(ConsoleError):
        con.read_flags()


def test_a_reply_cannot_forge_the_fleet_state(tmp_path: Path) -> None:
    """State lines inside erl_call's output are not the host's state: only the state
    script's own lines, after erl_call's end marker, are read."""
    make_release(tmp_path)
    forged = 'ROLLOUT-STATE/1 record {"rollout":"evil","generation":99}'
    reply(tmp_path, "rollout_flags", forged + "\n" + READ)
    holder = Holder("bob", "laptop", 1, None, "r-1", "deploy", "lg-1", "/l", 1.0)
    side = FleetSide("otp", holder, 60, lease_id=new_lease_id())
    con, _ = console(tmp_path, side=side)
    with pytest.raises(ConsoleError):
        con.read_flags()
    state = side.states.get("h1")
    assert state is not None and state.record is None


def test_hostile_values_never_reach_the_expression_as_code(tmp_path: Path) -> None:
    """Flag names outside the allowlist are refused before any call; an allowed state's
    values reach the node only inside the base64 payload."""
    make_release(tmp_path)
    con, session = console(tmp_path)
    with pytest.raises(UsageError):
        con.apply(FlagState.of({'use_a); os:cmd("touch x"), (': True}))
    assert session.calls == 0
    reply(tmp_path, "rollout_apply", f'{{ok, {{rollout_apply, "{NODE}", [], '
          "[{use_a, true}, {use_b, 5}]}}")  # fmt: skip
    con.apply(FlagState.of({"use_a": True, "use_b": 5}))
    expr = (tmp_path / "last-expr").read_text()
    payload = expr.split('base64:decode(<<"')[1].split('">>')[0]
    assert set(payload) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    assert base64.b64decode(payload).decode().splitlines() == [
        "allow use_a -", "allow use_b -", "set use_a true", "set use_b 5",
    ]  # fmt: skip


# -- judging -------------------------------------------------------------------------------


def test_judge_needs_both_markers_and_a_zero_status() -> None:
    """Output with no markers, a missing end marker, or a non-zero status is refused."""
    good = f"ROLLOUT-ERLCALL/1 begin\n{READ}\nROLLOUT-ERLCALL/1 end 0\nROLLOUT-STATE/1 now 5\n"
    ok = judge(good, Kind.READ)
    assert ok.data == {"node": NODE, "flags": {"use_a": True, "use_b": 10}}
    assert ok.rest == "ROLLOUT-STATE/1 now 5\n"
    assert judge(READ, Kind.READ).data is None
    assert judge(f"ROLLOUT-ERLCALL/1 begin\n{READ}", Kind.READ).data is None
    assert judge(good.replace("end 0", "end 1"), Kind.READ).data is None
    assert judge(good, Kind.APPLY).data is None


def test_term_parser_reads_the_subset_and_refuses_the_rest() -> None:
    """Atoms, numbers, strings, tuples, lists and maps parse; pids, refs, funs, binaries,
    improper lists, unknown escapes and deep nesting do not."""
    assert parse("{ok, [{a, true}, {'b c', -3}, #{x => 1.5}], \"s\"}") == (
        Atom("ok"), [(Atom("a"), True), (Atom("b c"), -3), {Atom("x"): 1.5}], "s",
    )  # fmt: skip
    for text in ("<0.1.0>", "#Ref<0.1.2.3>", "#Fun<erl_eval.1.2>", "#Bin<1>", "[a | b]",
                 '"\\x2"', "[" * 40 + "]" * 40, "{ok, 1} {ok, 2}"):  # fmt: skip
        with pytest.raises(TermError):
            parse(text)


def test_inventory_rollout_console_is_read_and_checked(tmp_path: Path) -> None:
    """rollout_console sets a host's path (auto by default); another value is exit-2 input
    naming the key and the choices."""
    from rollout.errors import InventoryError
    from rollout.inventory import load_inventory

    path = tmp_path / "inv.yml"
    path.write_text(
        "all:\n  hosts:\n    a: {}\n    b: {rollout_console: rpc}\n"
        "    c: {rollout_console: erl_call}\n"
    )
    modes = {h.name: h.console for h in load_inventory(path).hosts}
    assert modes == {"a": ConsoleMode.AUTO, "b": ConsoleMode.RPC, "c": ConsoleMode.ERL_CALL}
    path.write_text("all:\n  hosts:\n    a: {rollout_console: ssh}\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert "rollout_console" in caught.value.message and "erl_call" in caught.value.message


def test_a_final_apply_with_a_refused_setter_keeps_the_lease(tmp_path: Path) -> None:
    """A last apply whose setter did not answer ok exits 1 on the host (as the rpc template's
    raise does), so the state script keeps the lease; one whose setters all did gives it back."""
    from rollout.consolecode import Change

    make_release(tmp_path)
    holder = Holder("bob", "laptop", 1, None, "r-1", "deploy", "lg-1", "/l", 1.0)
    side = FleetSide("otp", holder, 60, lease_id=new_lease_id(), op_read=Op.TAKE)
    con, _ = console(tmp_path, side=side)
    con.read_flags()
    bad = base64.b64encode(b"{:error, :nope}").decode()
    reply(tmp_path, "rollout_apply",
          f'{{ok, {{rollout_apply, "{NODE}", [{{use_a, {{other, "{bad}"}}}}], '
          "[{use_a, false}, {use_b, absent}]}}")  # fmt: skip
    result = con.apply(FlagState.of({"use_a": True}), Change("deploy", 1, last=True))
    assert result.errors["use_a"] == "{:error, :nope}"
    assert (tmp_path / ".rollout-state" / "lease").exists()
    reply(tmp_path, "rollout_apply", f'{{ok, {{rollout_apply, "{NODE}", [], '
          "[{use_a, true}, {use_b, absent}]}}")  # fmt: skip
    assert con.apply(FlagState.of({"use_a": True}), Change("deploy", 1, last=True)).errors == {}
    assert not (tmp_path / ".rollout-state" / "lease").exists()
