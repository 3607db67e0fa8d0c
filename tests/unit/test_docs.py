"""Documentation that operators run must match the real tasks and the playbook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from rollout.events import Event, Kind
from rollout.playbook import load_playbook
from rollout.report import Reporter
from rollout.runbook import render_runbook

REPO = Path(__file__).resolve().parents[2]


def task_options() -> dict[str, set[str]]:
    """Every task's name and the long option names it accepts."""
    import tasks

    out: dict[str, set[str]] = {}
    for name in tasks.ns.task_names:
        task = tasks.ns[name]
        args = task.get_arguments()
        names = set()
        for arg in args:
            for n in arg.names:
                names.add(n.replace("_", "-"))
                if arg.kind is bool:
                    names.add("no-" + n.replace("_", "-"))
        out[name] = names
    return out


def commands_in(text: str) -> list[tuple[str, list[str]]]:
    found = []
    for line in text.splitlines():
        for match in re.finditer(r"invoke ([a-z][a-z.]*)([^`\n|>]*)", line):
            name = match.group(1)
            opts = re.findall(r"(?<![\w-])--([a-z][a-z-]*)", match.group(2))
            found.append((name, opts))
    return found


DOCS = ["RUNBOOK.md", "README.md", "docs/pipelines/github-actions.yml",
        "docs/pipelines/gitlab-ci.yml"]  # fmt: skip


def test_runbook_is_up_to_date() -> None:
    """The committed RUNBOOK.md is exactly what `invoke runbook` renders from the playbook."""
    playbook = load_playbook(REPO / "playbooks" / "otp_refactor.yml")
    assert (REPO / "RUNBOOK.md").read_text() == render_runbook(playbook), "run `invoke runbook`"


@pytest.mark.parametrize("doc", DOCS)
def test_documented_commands_exist(doc: str) -> None:
    """Every `invoke TASK --option` in the docs names a real task and a real option."""
    options = task_options()
    path = REPO / doc
    if not path.exists():
        pytest.skip(f"{doc} not written yet")
    found = commands_in(path.read_text())
    assert found, f"no invoke commands found in {doc}"
    for name, opts in found:
        if name in ("TASK", "X"):
            continue
        assert name in options, f"{doc}: unknown task {name!r}"
        for opt in opts:
            assert opt in options[name] or opt in ("help", "list"), (
                f"{doc}: `invoke {name}` has no option --{opt}"
            )


@pytest.mark.parametrize("doc", ["docs/pipelines/github-actions.yml",
                                 "docs/pipelines/gitlab-ci.yml"])  # fmt: skip
def test_pipeline_examples_are_valid_yaml(doc: str) -> None:
    """The example pipeline definitions parse as YAML."""
    assert isinstance(yaml.safe_load((REPO / doc).read_text()), dict)


def test_json_events_validate_against_schema(capsys: pytest.CaptureFixture[str]) -> None:
    """Each JSON line the reporter prints validates against docs/events.schema.json."""
    schema = json.loads((REPO / "docs" / "events.schema.json").read_text())
    reporter = Reporter(as_json=True)
    reporter(Event(Kind.RUN_START, "start", data={"run": "r-1"}, ts=1_900_000_000.0))
    for kind in Kind:
        reporter(Event(kind, "m", host="h1", ok=True, data={"x": 1}, ts=1_900_000_000.0))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(Kind) + 1
    for line in lines:
        jsonschema.validate(json.loads(line), schema)


def test_schema_rejects_unknown_event() -> None:
    """The schema is strict: an unknown event kind does not validate."""
    schema = json.loads((REPO / "docs" / "events.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"ts": 1, "event": "bogus", "message": "x"}, schema)
