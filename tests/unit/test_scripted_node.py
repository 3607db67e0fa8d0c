"""Commands -> executor -> SSHBackend -> RemoteConsole -> transport, in milliseconds: the
scripted transport and fake nodes answer what the console really sends."""

from __future__ import annotations

import base64
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from rollout.commands.context import Context
from rollout.commands.deploys import deploy
from rollout.commands.maintenance import backup
from rollout.commands.rollbacks import rollback
from rollout.commands.statusreport import status
from rollout.console import RemoteConsole
from rollout.consolecode import Change
from rollout.erlcall import BEGIN, END, ConsolePath, ConsolePaths, PathChoice
from rollout.errors import (
    CommandTimeout,
    ConsoleError,
    FleetBusy,
    HostsUnreachable,
    PlaybookError,
    UsageError,
)
from rollout.fleetrecord import STATE_MARKER, Holder, Record
from rollout.fleetstate import STATE_SCRIPT, FleetSide, LeaseConflict, Op
from rollout.models import ConsoleMode, FlagState, Host, Playbook
from rollout.transport.base import CommandResult
from tests.fakes import FakeFleet, FakeNode, Lease, Request, ScriptedTransport

NAMES = ("h1", "h2", "h3")


@pytest.fixture
def nodes() -> FakeFleet:
    return FakeFleet(NAMES)


@pytest.fixture
def ctx(tmp_path: Path, playbook: Playbook, nodes: FakeFleet,
        monkeypatch: pytest.MonkeyPatch) -> Context:  # fmt: skip
    monkeypatch.setenv("ROLLOUT_BACKUPS", str(tmp_path / "backups"))
    return nodes.context(tmp_path, playbook, retry_deadline=0.0)


def _deploy_to_3(ctx: Context) -> None:
    for phase in (1, 2, 3):
        if phase == 3:
            backup(ctx)  # phase 3 needs a backup taken at phase 2
        deploy(ctx, phase)


def _record(node_record: str | None) -> Record:
    assert node_record is not None
    record = Record.parse(node_record)
    assert record is not None
    return record


def test_deploy_converges_records_and_gives_back_the_lease(
    ctx: Context, nodes: FakeFleet, playbook: Playbook
) -> None:
    """Deploying 1, 2, 3 through the real console leaves every node at phase 3, its record at
    phase 3 (generation 3, this ledger's), and no lease held once the run ends."""
    _deploy_to_3(ctx)
    for name, node in nodes.nodes.items():
        assert node.flags == playbook.phase(3).state.as_dict(), name
        record = _record(node.record)
        assert (record.phase, record.generation, record.action) == (3, 3, "deploy")
        # the lease goes back in the host's last call: its final apply, or a release call
        # for a host whose last apply was not the run's last change (the canary batch)
        assert node.lease is None and node.ops[-1] in ("release", "final")
    assert ctx.ledger.state("inv").phase == 3
    every = nodes.transport.requests
    assert every and all(r.stdin.startswith(STATE_SCRIPT.encode()) for r in every)


def test_rollback_turns_off_later_flags_on_every_node(
    ctx: Context, nodes: FakeFleet, playbook: Playbook
) -> None:
    """Rollback 3 -> 2 puts every node's flags at phase 2 and records a rollback to 2."""
    _deploy_to_3(ctx)
    rollback(ctx, reason="a test")
    for node in nodes.nodes.values():
        assert node.flags == playbook.phase(2).state.as_dict()
        record = _record(node.record)
        assert (record.phase, record.action, record.reason) == (2, "rollback", "a test")
    assert ctx.ledger.state("inv").phase == 2


def test_status_reads_records_without_taking_a_lease(ctx: Context, nodes: FakeFleet) -> None:
    """Status peeks: every node is read and matched, and none is left with a lease."""
    deploy(ctx, 1)
    report = status(ctx)
    assert [h.matches for h in report.hosts] == [1, 1, 1]
    assert all(h.record is not None and h.record.phase == 1 for h in report.hosts)
    assert all(n.ops[-1] == "peek" and n.lease is None for n in nodes.nodes.values())


def test_a_live_lease_of_another_controller_stops_the_deploy(
    ctx: Context, nodes: FakeFleet
) -> None:
    """h2 leased by an older run on another machine: the deploy raises FleetBusy, changes no
    node, leaves h2's lease to its holder and gives back what it took on h1 and h3."""
    other = Holder("mallory", "elsewhere", 4242, None, "r-other", "deploy --phase 1",
                   "ledger-x", "/x/ledger.db", claimed=1.0)  # fmt: skip
    expires = int(nodes["h2"].clock()) + 600
    nodes["h2"].lease = Lease("fl-0123456789ab", expires, other.to_json())
    before = nodes.flags()
    with pytest.raises(FleetBusy, match="mallory@elsewhere"):
        deploy(ctx, 1)
    assert nodes.flags() == before
    assert all(n.applies == 0 for n in nodes.nodes.values())
    assert nodes["h2"].lease is not None and nodes["h2"].lease.id == "fl-0123456789ab"
    assert nodes["h1"].lease is None and nodes["h3"].lease is None


def test_a_node_that_is_down_stops_the_preflight(ctx: Context, nodes: FakeFleet) -> None:
    """rpc's nodedown on h3 fails the pre-flight on h3 alone, before any change."""
    nodes["h3"].up = False
    with pytest.raises(HostsUnreachable) as caught:
        deploy(ctx, 1)
    assert [(r.host, r.ok) for r in caught.value.results] == [
        ("h1", True), ("h2", True), ("h3", False)]  # fmt: skip
    assert "nodedown" in (caught.value.results[2].error or "")
    assert all(n.applies == 0 for n in nodes.nodes.values())


def test_a_flag_the_release_does_not_define_stops_before_any_change(
    ctx: Context, nodes: FakeFleet
) -> None:
    """A release without use_reliable_messaging reads it back absent: the deploy refuses with
    a PlaybookError naming the flag, and no node is changed."""
    del nodes["h1"].flags["use_reliable_messaging"]
    with pytest.raises(PlaybookError, match="use_reliable_messaging"):
        deploy(ctx, 1)
    assert all(n.applies == 0 for n in nodes.nodes.values())


def test_health_reads_the_nodes_metrics(nodes: FakeFleet) -> None:
    """A health call returns the node's metrics by name (a missing one as None) and its
    flags, as Foundation.Deployment.Monitor answers them."""
    nodes["h1"].metrics["error_rate"] = 7.5
    del nodes["h1"].metrics["average_response_time"]
    host = Host("h1", "127.0.0.1")
    console = RemoteConsole(nodes.transport.connect(host), allow=("use_v2_coordinator",),
                            metrics=("error_rate", "average_response_time"))  # fmt: skip
    health = console.health()
    assert health.metrics == {"error_rate": 7.5, "average_response_time": None}
    assert health.reading.flags == {"use_v2_coordinator": False}
    assert health.reading.node == "foundation@h1"


# -- the console path: the probe folded into a host's first read -----------------------------


def _path_of(request: Request) -> str:
    """The console path argument (rpc, erl_call, auto) of a console call's command line."""
    words = shlex.split(request.command)
    return words[4 + 5] if len(words) == 4 + 7 else "rpc"


def _execs(nodes: FakeFleet) -> dict[str, list[str]]:
    """Every host's execs, in order, by their console path (probe: the erl_call probe;
    state: a lease or record call that runs no console code)."""
    out: dict[str, list[str]] = {n: [] for n in nodes.nodes}
    for request in nodes.transport.requests:
        text = request.stdin.decode()[len(STATE_SCRIPT) :]
        lines = text.split("\n")
        op = lines[lines.index("") + 1].split(" ", 1)[0]  # the header after the environment
        label = _path_of(request)
        if "rollout_probe" in text:
            label = "probe"
        elif op in ("release", "note", "clear"):
            label = "state"
        out[request.host.name].append(label)
    return out


def test_a_deploy_on_rpc_only_hosts_folds_the_probe_into_the_preflight(
    ctx: Context, nodes: FakeFleet
) -> None:
    """auto on releases without erl_call: the pre-flight read is ONE exec per host (the
    erl_call branch's 69 runs the rpc body in the same exec), no probe is ever sent, and
    every later call is rpc."""
    deploy(ctx, 1)
    execs = _execs(nodes)
    # h1, the canary batch: read, apply, release; h2 and h3: read, the final apply
    assert execs == {"h1": ["auto", "rpc", "state"], "h2": ["auto", "rpc"],
                     "h3": ["auto", "rpc"]}  # fmt: skip
    auto = [r for r in nodes.transport.requests if _path_of(r) == "auto"]
    assert all(r.stdin.startswith(STATE_SCRIPT.encode()) for r in auto)  # the state rides on it


def test_auto_without_erl_call_records_the_probes_reason_in_one_exec(nodes: FakeFleet) -> None:
    """The first read's fallback settles rpc with the reason a separate probe recorded."""
    paths = ConsolePaths()
    console = RemoteConsole(nodes.transport.connect(Host("h1", "127.0.0.1")),
                            allow=("use_v2_coordinator",), paths=paths)  # fmt: skip
    reading = console.read_flags()
    assert len(nodes.transport.requests) == 1
    assert (reading.console, reading.console_fallback) == (
        "rpc", "the release has no erts-13.1.5/bin/erl_call")  # fmt: skip
    assert paths.get("h1") == PathChoice(
        ConsolePath.RPC, "the release has no erts-13.1.5/bin/erl_call"
    )
    console.read_flags()
    assert [_path_of(r) for r in nodes.transport.requests] == ["auto", "rpc"]


def test_a_deploy_on_erl_call_hosts_settles_erl_call_in_the_first_read(
    tmp_path: Path, playbook: Playbook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto on releases with erl_call: the pre-flight read is one exec that settles erl_call
    (no probe), every later call goes through erl_call, and the deploy converges."""
    monkeypatch.setenv("ROLLOUT_BACKUPS", str(tmp_path / "backups"))
    nodes = FakeFleet(NAMES, erl_call=True)
    ctx = nodes.context(tmp_path, playbook, retry_deadline=0.0)
    deploy(ctx, 1)
    assert _execs(nodes) == {"h1": ["auto", "erl_call", "state"], "h2": ["auto", "erl_call"],
                             "h3": ["auto", "erl_call"]}  # fmt: skip
    for node in nodes.nodes.values():
        assert node.flags == playbook.phase(1).state.as_dict() and node.lease is None


def test_auto_where_erl_call_cannot_reach_the_node_uses_rpc_as_before(
    nodes: FakeFleet,
) -> None:
    """erl_call present but not reaching the node: the first read's erl_call fails with no
    output, which is the probe's own answer (no extra probe), rpc runs for this call and,
    as it works, is settled with the probe's reason; two execs, as probe + rpc were."""
    node = nodes["h1"]
    node.erl_call, node.erl_reach = True, False
    paths = ConsolePaths()
    console = RemoteConsole(nodes.transport.connect(Host("h1", "127.0.0.1")),
                            allow=("use_v2_coordinator",), paths=paths)  # fmt: skip
    reading = console.read_flags()
    assert [_path_of(r) for r in nodes.transport.requests] == ["auto", "rpc"]
    assert reading.console == "rpc"
    assert (reading.console_fallback or "").startswith(
        "erl_call did not reach the node: erl_call exited 1"
    )
    choice = paths.get("h1")
    assert choice is not None and choice.path is ConsolePath.RPC


def test_auto_where_the_node_is_down_settles_nothing(nodes: FakeFleet) -> None:
    """Neither erl_call nor rpc reaches the node: the read fails and the path stays open, so
    the next read folds the probe in again (a node that comes back gets erl_call)."""
    node = nodes["h1"]
    node.erl_call, node.up = True, False
    paths = ConsolePaths()
    console = RemoteConsole(nodes.transport.connect(Host("h1", "127.0.0.1")),
                            allow=("use_v2_coordinator",), paths=paths)  # fmt: skip
    with pytest.raises(ConsoleError, match="nodedown"):
        console.read_flags()
    assert paths.get("h1") is None
    node.up = True
    assert console.read_flags().console == "erl_call"
    assert [_path_of(r) for r in nodes.transport.requests] == ["auto", "rpc", "auto"]


def test_auto_first_read_timing_out_in_erl_call_is_a_timeout(nodes: FakeFleet) -> None:
    """erl_call killed by its own deadline (142) in the first read: CommandTimeout, as the
    probe's, in one exec; nothing is settled."""
    timed_out = f"{BEGIN}\n\n{END}142\n"

    def handler(request: Request) -> CommandResult:
        return CommandResult("h1", request.command, 142, timed_out, "", 0.001)

    transport = ScriptedTransport(handler)
    paths = ConsolePaths()
    console = RemoteConsole(transport.connect(Host("h1", "127.0.0.1")),
                            allow=("use_v2_coordinator",), paths=paths)  # fmt: skip
    with pytest.raises(CommandTimeout, match="did not answer erl_call"):
        console.read_flags()
    assert len(transport.requests) == 1 and paths.get("h1") is None


def test_explicit_paths_and_non_read_first_calls_keep_their_behaviour(
    nodes: FakeFleet,
) -> None:
    """rollout_console: rpc never folds; a host whose first call is not a read (a health
    call) is probed separately, as before; a settled host keeps its path."""
    rpc_host = Host("h1", "127.0.0.1", console=ConsoleMode.RPC)
    RemoteConsole(nodes.transport.connect(rpc_host), allow=("use_v2_coordinator",)).read_flags()
    health = RemoteConsole(nodes.transport.connect(Host("h2", "127.0.0.1")),
                           allow=("use_v2_coordinator",), metrics=("error_rate",))  # fmt: skip
    health.health()
    health.read_flags()
    execs = _execs(nodes)
    assert execs["h1"] == ["rpc"]
    assert execs["h2"] == ["probe", "rpc", "rpc"]


# -- what must never reach the transport ------------------------------------------------------


def _console(transport: ScriptedTransport, allow: tuple[str, ...], side: FleetSide | None = None,
             ) -> RemoteConsole:  # fmt: skip
    host = Host("h1", "127.0.0.1")
    return RemoteConsole(transport.connect(host), allow=allow, side=side)


@pytest.mark.parametrize(
    ("allow", "state"),
    [
        (("use_v2_coordinator",), {"use_v2_coordinator": 0}),  # 0 is no percentage
        (("use_v2_coordinator",), {"use_v2_coordinator": 101}),
        (("use_v2_coordinator",), {"use_v2_coordinator": "true"}),  # text, not a boolean
        (("use_v2_coordinator",), {"not_allowed": True}),  # not in the allowlist
        (("Use_V2",), {"Use_V2": True}),  # not a plain lowercase name
        (('x"); System.halt() #',), {}),  # code in an allowlisted name
    ],
)
def test_hostile_values_are_refused_before_the_transport(
    nodes: FakeFleet, allow: tuple[str, ...], state: dict[str, object]
) -> None:
    """A flag value or name the console must not encode raises UsageError, and not one byte
    was sent to the host."""
    console = _console(nodes.transport, allow)
    with pytest.raises(UsageError, match="refusing"):
        console.apply(FlagState.of(state))  # type: ignore[arg-type]
    assert nodes.transport.requests == []


def test_an_oversized_record_is_refused_before_the_transport(nodes: FakeFleet) -> None:
    """A change whose record would exceed the state script's limit (a reason and a pause
    reason of control characters, which JSON escapes to six bytes each) is refused before
    anything is sent."""
    holder = Holder("alice", "here", 1, None, "r-1", "deploy", "l", "/l.db", 1.0)
    side = FleetSide("otp", holder, 60, lease_id="fl-00000000000a", reason="\x00" * 10_000)
    side.pause = ("alice", "\x00" * 10_000)
    console = _console(nodes.transport, ("use_v2_coordinator",), side)
    with pytest.raises(UsageError, match="fleet record would be"):
        console.apply(FlagState.of({"use_v2_coordinator": True}))
    assert nodes.transport.requests == []


def test_values_reach_the_node_only_as_base64_data(nodes: FakeFleet) -> None:
    """What the console sends carries the desired state only inside the base64 payload: the
    node decodes it to exactly the allow and set lines, and the flag is set."""
    console = _console(nodes.transport, ("use_v2_coordinator",))
    result = console.apply(FlagState.of({"use_v2_coordinator": True}))
    assert result.errors == {} and result.reading.flags == {"use_v2_coordinator": True}
    probe, request = nodes.transport.requests  # the console path's probe (rollout.erlcall)
    assert "rollout_probe" in probe.stdin.decode() and "use_v2" not in probe.stdin.decode()
    body = request.stdin.decode().split('rollout_payload =\n  "', 1)[1].split('"', 1)[0]
    lines = base64.b64decode(body).decode().split("\n")
    assert lines == ["allow use_v2_coordinator -", "set use_v2_coordinator true"]
    assert "use_v2_coordinator" not in request.command
    assert nodes["h1"].ops == ["none", "none"] and nodes["h1"].flags["use_v2_coordinator"] is True


# -- the fake node keeps to the real state script -----------------------------------------------

_STAND_IN = """#!/bin/sh
[ "$1" = rpc ] || exit 2
exit 0
"""


def _state_lines(stdout: str) -> list[str]:
    lines = [line for line in stdout.splitlines() if line.startswith(STATE_MARKER)]
    return [re.sub(r"\b\d{9,}\b", "T", line) for line in lines]  # host clock values


@pytest.mark.skipif(not all(shutil.which(t) for t in ("flock", "dd", "timeout")),
                    reason="the real state script needs flock, dd and timeout")  # fmt: skip
def test_the_fake_node_answers_state_calls_as_the_real_script(tmp_path: Path) -> None:
    """Every lease and record operation (take, a conflict, apply, peek, an emergency
    take-over, a lost lease, note, release, clear) gets the same exit status and the same
    ROLLOUT-STATE lines from the fake node as from fleetstate.STATE_SCRIPT run by sh."""
    release_bin = tmp_path / "release" / "bin" / "foundation"
    release_bin.parent.mkdir(parents=True)
    release_bin.write_text(_STAND_IN)
    release_bin.chmod(0o755)
    host = Host("h1", "127.0.0.1", release_bin=str(release_bin))
    node = FakeNode("h1")
    compared: list[str] = []

    def both(request: Request) -> CommandResult:
        real = subprocess.run(request.command, shell=True, input=request.stdin,
                              capture_output=True, timeout=30, check=False)  # fmt: skip
        fake = node.handle(request)
        assert (fake.exit_status, _state_lines(fake.stdout)) == (
            real.returncode,
            _state_lines(real.stdout.decode()),
        )
        lease = f"{STATE_MARKER} lease"
        compared.extend(x for x in _state_lines(fake.stdout) if x.startswith(lease))
        return fake

    transport = ScriptedTransport(both)
    session = transport.connect(host)
    allow = ("use_v2_coordinator",)

    def holder(who: str) -> Holder:
        return Holder(who, "here", 1, None, f"r-{who}", "deploy", "l", "/l.db", 1.0)

    a = FleetSide("otp", holder("alice"), 60, lease_id="fl-aaaaaaaaaaaa", op_read=Op.TAKE)
    b = FleetSide("otp", holder("bob"), 60, lease_id="fl-bbbbbbbbbbbb", op_read=Op.TAKE)
    peek = FleetSide("otp", None, 0)
    alice, bob = (RemoteConsole(session, allow=allow, side=s) for s in (a, b))
    alice.read_flags()  # take a free lease
    with pytest.raises(LeaseConflict):
        bob.read_flags()  # held by alice
    a.op_read = Op.RENEW
    alice.apply(FlagState.of({"use_v2_coordinator": True}), Change("deploy", 1))
    RemoteConsole(session, allow=allow, side=peek).read_flags()
    b.replace = {"h1": "*"}
    bob.read_flags()  # an emergency takes alice's live lease
    with pytest.raises(LeaseConflict):
        alice.read_flags()  # alice's lease is gone
    bob.state_call(Op.NOTE, b.record_for("h1", "resume", None))
    bob.state_call(Op.RELEASE)
    alice.state_call(Op.CLEAR, replace_id="fl-bbbbbbbbbbbb")
    assert [line.split(" ")[1:3] for line in compared] == [
        ["lease", "taken"], ["lease", "held"], ["lease", "renewed"], ["lease", "peek"],
        ["lease", "taken"], ["lease", "lost"], ["lease", "renewed"], ["lease", "released"],
        ["lease", "notmine"],
    ]  # fmt: skip
    assert _record(node.record).action == "resume"
    a.op_read = Op.TAKE
    alice.read_flags()  # take the free lease again
    a.op_read = Op.RENEW
    alice.apply(FlagState.of({"use_v2_coordinator": False}), Change("deploy", 0, last=True))
    assert compared[-2:] == [f"{STATE_MARKER} lease taken fl-aaaaaaaaaaaa T",
                             f"{STATE_MARKER} lease renewed fl-aaaaaaaaaaaa T"]  # fmt: skip
    assert node.lease is None and a.states["h1"].lease is not None
    assert a.states["h1"].lease.status == "released"
