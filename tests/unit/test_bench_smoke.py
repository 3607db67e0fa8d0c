"""Smoke tests of the benchmark harness (bench/): generated scripts, parsing, reporting; no lab."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from bench import ansible, erlcall, fanout, fleet, measure, report
from bench.jobs import (
    Job,
    Step,
    StepKind,
    console_steps,
    make_jobs,
    result_lines,
    step_command,
)
from rollout.consolecode import MARKER
from rollout.erlterm import Atom, TermError, parse
from rollout.models import Host
from rollout.playbook import load_playbook

REPO = Path(__file__).resolve().parents[2]
FLAGS_REPLY = (
    "{ok, {rollout_flags, 'n@127.0.0.1', [{use_new_error_handling, true}, "
    "{enforce_supervised_tasks, false}, {use_v2_coordinator, 10}, {use_sync_test_apis, true}, "
    "{use_reliable_messaging, false}, {use_persistent_agents, false}]}}"
)


@pytest.fixture(scope="module")
def playbook():
    return load_playbook(REPO / "playbooks" / "otp_refactor.yml")


def hosts(tmp_path: Path) -> list[Host]:
    out = []
    for i in (1, 2):
        root = tmp_path / f"h{i}"
        (root / "release" / "bin").mkdir(parents=True)
        out.append(
            Host(
                f"h{i}",
                "127.0.0.1",
                port=2200 + i,
                user="lab",
                key_file="/k",
                known_hosts_file="/kh",
                release_bin=str(root / "release" / "bin" / "foundation"),
                restart_command=str(root / "restart.sh"),
            )
        )
    return out


def test_term_parser_reads_the_reply_subset() -> None:
    """Atoms, booleans, numbers, strings, tuples, lists and maps parse; true/false are bools."""
    assert parse("#{a => 1.5, 'b c' => [x, \"s\"]}") == {
        Atom("a"): 1.5,
        Atom("b c"): [Atom("x"), "s"],
    }
    assert parse(FLAGS_REPLY)[1][2][0] == (Atom("use_new_error_handling"), True)


@pytest.mark.parametrize(
    "text", ["<n@127.0.0.1.146.0>", "#Bin<1,2>", "{ok, 1} junk", "[a | b]", "", "{ok,"]
)
def test_term_parser_refuses_anything_else(text: str) -> None:
    """Pids, binaries, improper lists, trailing text and truncated replies are errors."""
    with pytest.raises(TermError):
        parse(text)


def test_classify_accepts_only_the_exact_shape(playbook) -> None:
    """A well-formed read is a success; exit codes, errors and odd values are failures."""
    good = erlcall.classify(0, FLAGS_REPLY, allow=playbook.flags)
    assert good.ok and good.flags["use_v2_coordinator"] == 10 and good.node == "n@127.0.0.1"
    bad = [
        erlcall.classify(1, FLAGS_REPLY, allow=playbook.flags),
        erlcall.classify(0, '{error, "*** eval: boom"}', allow=playbook.flags),
        erlcall.classify(0, "{badrpc, nodedown}", allow=playbook.flags),
        erlcall.classify(0, "{ok, {rollout_error, no_table}}", allow=playbook.flags),
        erlcall.classify(
            0, FLAGS_REPLY.replace("true}, {enforce", '"yes"}, {enforce'), allow=playbook.flags
        ),
        erlcall.classify(0, FLAGS_REPLY, allow=playbook.flags, health=True),
    ]
    assert [r.ok for r in bad] == [False] * len(bad)


def test_jobs_carry_the_tools_console_calls(playbook) -> None:
    """Each step is the tool's rendered console body in a here-document under `timeout`."""
    jobs = {j.name: j for j in make_jobs(emergency=True)}
    assert console_steps(jobs["rollback"]) == 3
    command = step_command(None, playbook, Step(StepKind.APPLY, 1), 60)
    assert command.startswith("timeout -k 5 60 sh -c ")
    assert "rollout_payload =" in command and "@release_bin@" in command
    assert step_command(None, playbook, Step(StepKind.RESTART), 60).endswith(
        "sh -c @restart_command@\n"
    )


def test_erl_call_floor_runs_the_tools_erlang_expressions(playbook) -> None:
    """The erl_call floor's step is the tool's erl_call body under the tool's own console
    function, and its accepted replies count as console results (errors do not)."""
    command = step_command(None, playbook, Step(StepKind.APPLY, 1), 60, "erl_call")
    assert command.startswith("timeout -k 5 60 sh -c ")
    assert "rollout_apply" in command and "base64:decode" in command and " 59 <<" in command
    assert "rollout_payload =" not in command  # not the Elixir template
    reply = 'ROLLOUT-ERLCALL/1 begin\n{ok, {rollout_flags, "bg==", []}}\nROLLOUT-ERLCALL/1 end 0\n'
    assert result_lines(reply) == 1
    assert result_lines(reply.replace("{ok, {rollout_flags", '{error, "x"')) == 0


def test_fanout_script_is_valid_bash_and_outputs_are_checked(playbook, tmp_path) -> None:
    """The floor's script parses, names every host's paths, and output checks count results."""
    job = next(j for j in make_jobs(emergency=True) if j.name == "rollback")
    hs = hosts(tmp_path)
    script = fanout.write_script(tmp_path / "f" / "run.sh", hs, playbook, job, 60)
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert all(h.release_bin in text and str(h.restart_command) in text for h in hs)
    assert "ControlMaster=no" in text and "KexAlgorithms=curve25519-sha256@libssh.org" in text
    out = tmp_path / "f" / "out"
    (out / "h1").write_text(f"{MARKER} {{}}\n" * 3)
    (out / "h2").write_text(f"{MARKER} {{}}\n")
    assert fanout.check_outputs(out, hs, job) == ["h2"]


def test_ansible_playbook_keeps_bodies_verbatim(playbook, tmp_path) -> None:
    """Bodies are !unsafe constants; only the host's paths are templated, shell-quoted."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    job = next(j for j in make_jobs(emergency=True) if j.name == "rollback")
    path = ansible.write_playbook(tmp_path / "p.yml", playbook, job, 60)
    play = yaml.load(path.read_text(), Loader=Loader)[0]
    assert play["gather_facts"] is False and len(play["tasks"]) == 4
    apply = play["tasks"][0]
    assert "{{ release_bin | quote }}" in apply["raw"]
    assert any("rollout_payload" in v for v in apply["vars"].values())
    cfg = ansible.write_config(tmp_path, hosts(tmp_path), tmp_path / "cp").read_text()
    assert "pipelining = True" in cfg and "ControlPersist" in cfg and "forks = 2" in cfg


def test_stub_phase_files_round_trip(playbook, tmp_path) -> None:
    """Setting a phase on stub hosts is what the off-phase check then finds."""
    hs = hosts(tmp_path)
    fleet.set_stub_phase(hs, playbook, 2)
    assert fleet.stub_hosts_off_phase(hs, playbook, 2) == []
    assert fleet.stub_hosts_off_phase(hs, playbook, 1) == ["h1", "h2"]


def test_measure_run_times_and_fails_loudly(tmp_path) -> None:
    """A command is timed; a failing one raises RunFailed with its output."""
    sample = measure.run(["true"])
    assert sample.seconds > 0
    with pytest.raises(measure.RunFailed, match="nope"):
        measure.run(["sh", "-c", "echo nope; exit 3"], stdout=tmp_path / "log")


def test_report_renders_a_small_run() -> None:
    """Tables, ratios to the floor and target verdicts come out of saved results."""
    rec = dict(part="stub", n=50, job="deploy", cpu_seconds=1.0, max_rss_kib=1024,
               tree_rss_kib=None)  # fmt: skip
    data = {
        "started": "now",
        "seconds": 60.0,
        "command": "bash bench/run.sh",
        "machine": {
            "cpus": "2",
            "kernel": "k",
            "python": "3",
            "openssh": "o",
            "ansible_core": "a",
        },  # fmt: skip
        "jobs": {"deploy": "deploy phase 1"},
        "records": [
            {**rec, "contender": "rollout", "rep": 0, "seconds": 2.0},
            {**rec, "contender": "ssh", "rep": 0, "seconds": 1.0},
            {**rec, "contender": "ansible", "rep": 0, "seconds": 12.0},
        ],
        "cli": {"invoke --list": [0.2, 0.3]},
    }
    text = report.render(data)
    assert "| 50 | deploy | rollout | 2.000 |" in text
    assert "2.00x (2.00 s vs 1.00 s) | NOT met" in text
    assert "6.0x" in text and "0.250 s (median) | met" in text


def test_job_titles_say_what_runs() -> None:
    """Without --emergency the rollback job says it times `rollback --to 1` instead."""
    plain = {j.name: j for j in make_jobs(emergency=False)}
    assert isinstance(plain["rollback"], Job)
    assert "--to" in plain["rollback"].tool_args and "no --emergency" in plain["rollback"].title
