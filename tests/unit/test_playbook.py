"""Playbook loading: full-state resolution, health merging, and precise errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.errors import ExitCode, PlaybookError
from rollout.models import (
    BalanceCheck,
    CheckCategory,
    CheckKind,
    CommandCheck,
    CommandWhere,
    Direction,
    FlagValue,
    HealthPolicy,
    MetricCheck,
    NotifyKind,
    PatternCheck,
    Playbook,
    Risk,
    SourceKind,
    Threshold,
)
from rollout.playbook import load_playbook, load_playbook_text

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "playbooks" / "otp_refactor.yml"
BAD = ROOT / "tests" / "data" / "playbooks"

MINIMAL = """\
rollout: demo
flags: {alpha: false, beta: false}
phases:
  - {phase: 1, name: One, risk: low, soak: 1m, set: {alpha: true}}
"""

OFF: dict[str, FlagValue] = {
    "use_persistent_agents": False,
    "use_v2_coordinator": False,
    "use_new_error_handling": False,
    "use_sync_test_apis": False,
    "enforce_supervised_tasks": False,
    "use_reliable_messaging": False,
}
PHASE_1 = {**OFF, "use_sync_test_apis": True, "use_new_error_handling": True}
PHASE_2 = {**PHASE_1, "use_reliable_messaging": True, "enforce_supervised_tasks": True}
PHASE_3 = {**PHASE_2, "use_persistent_agents": True}
PHASE_4 = {**PHASE_3, "use_v2_coordinator": 10}
PHASE_5 = {**PHASE_3, "use_v2_coordinator": 100}
STATES = [OFF, PHASE_1, PHASE_2, PHASE_3, PHASE_4, PHASE_5]


@pytest.fixture(scope="module")
def reference() -> Playbook:
    return load_playbook(REFERENCE)


def with_phases(phases: str, top: str = "") -> str:
    """A two-flag playbook with ``top`` keys and the given ``phases`` list."""
    return f"rollout: demo\nflags: {{alpha: false, beta: false}}\n{top}phases:\n{phases}"


def refused(text: str) -> PlaybookError:
    with pytest.raises(PlaybookError) as info:
        load_playbook_text(text, "test.yml")
    return info.value


# -- the reference playbook ------------------------------------------------------------------


def test_reference_resolves_every_phase_to_its_full_state(reference: Playbook) -> None:
    """Phases 0..5 of the reference playbook resolve to exactly the expected full flag states."""
    assert reference.last == 5
    for number, expected in enumerate(STATES):
        assert reference.phase(number).state.as_dict() == expected, f"phase {number}"


def test_reference_rollback_to_phase_2_turns_persistence_off(reference: Playbook) -> None:
    """Phase 2's full state switches off the flags phases 3..5 turn on, so rollbacks undo them."""
    state = reference.phase(2).state
    assert state.get("use_persistent_agents") is False
    assert state.get("use_v2_coordinator") is False
    assert reference.phase(3).state.get("use_persistent_agents") is True
    assert reference.phase(3).state.get("use_v2_coordinator") is False


def test_reference_keeps_deltas_as_listed(reference: Playbook) -> None:
    """Phase.delta holds only what each phase lists, not the resolved state."""
    deltas = [reference.phase(n).delta.as_dict() for n in range(1, 6)]
    assert deltas == [
        {"use_sync_test_apis": True, "use_new_error_handling": True},
        {"use_reliable_messaging": True, "enforce_supervised_tasks": True},
        {"use_persistent_agents": True},
        {"use_v2_coordinator": 10},
        {"use_v2_coordinator": 100},
    ]


def test_reference_phase_metadata(reference: Playbook) -> None:
    """Names, risks, soaks and gates of the reference phases match the rollout plan."""
    risks = [p.risk for p in reference.phases]
    soaks = [p.soak for p in reference.phases]
    assert risks == [Risk.LOW, Risk.MEDIUM, Risk.HIGH, Risk.HIGH, Risk.MEDIUM]
    assert soaks == [1800.0, 7200.0, 86400.0, 86400.0, 86400.0]
    assert [p.gates.backup for p in reference.phases] == [False, False, True, False, False]
    assert reference.phase(1).name == "Development"
    assert all(p.validation for p in reference.phases)


def test_reference_policy_and_emergency(reference: Playbook) -> None:
    """The reference rolls one host first, tolerates no failure, and escapes to phase 1."""
    assert reference.name == "otp_refactor"
    assert reference.policy.serial == (1, "100%")
    assert reference.policy.max_fail_percentage == 0.0
    assert reference.emergency.phase == 1 and reference.emergency.restart is True
    assert reference.phase(reference.emergency.phase).state.as_dict() == PHASE_1


def test_reference_has_no_zero_percentages(reference: Playbook) -> None:
    """No phase of the reference playbook sets a percentage outside 1..100 (0 reads as on)."""
    for phase in reference.phases:
        for _, value in phase.state:
            assert isinstance(value, bool) or 1 <= value <= 100


def test_reference_thresholds(reference: Playbook) -> None:
    """The playbook-wide thresholds are the five automatic-rollback limits with their units."""
    assert reference.source.kind is SourceKind.CONSOLE
    assert [t.describe() for t in reference.health.thresholds] == [
        "error_rate > 5%",
        "restart_frequency > 10/min",
        "message_delivery_success < 95%",
        "state_recovery_success < 99%",
        "average_response_time > 100ms",
    ]
    assert reference.health.interval == 30.0
    assert (reference.health.failure_limit, reference.health.inconclusive_limit) == (2, 4)


def test_reference_phase_2_override_merges_per_metric(reference: Playbook) -> None:
    """Phase 2 raises only the delivery bar; other thresholds and settings are inherited."""
    assert reference.phase(1).health is None
    assert reference.health_for(1) == reference.health
    merged = reference.health_for(2)
    by_metric = {t.metric: t for t in merged.thresholds}
    assert by_metric["message_delivery_success"] == Threshold(
        "message_delivery_success", Direction.MIN, 99.0, "%"
    )
    assert by_metric["error_rate"] == reference.health.thresholds[0]
    assert len(merged.thresholds) == 5
    assert merged.interval == reference.health.interval


def test_match_finds_phases(reference: Playbook) -> None:
    """Playbook.match names the phase whose full state a host reports, or None for a mix."""
    for number, expected in enumerate(STATES):
        assert reference.match(expected) == number
    assert reference.match({**PHASE_2, "use_v2_coordinator": 10}) is None
    assert reference.match({**PHASE_4, "use_v2_coordinator": True}) is None


# -- good input beyond the reference ---------------------------------------------------------


def test_defaults_when_optional_sections_are_missing() -> None:
    """A playbook with only rollout, flags and phases gets the models' default policies."""
    playbook = load_playbook_text(MINIMAL)
    assert playbook.health == HealthPolicy(thresholds=())
    assert playbook.source.kind is SourceKind.CONSOLE
    assert playbook.policy.serial == ("100%",)
    assert playbook.emergency.phase == 1
    assert playbook.phases[0].gates.checks is True
    assert playbook.phases[0].validation == ""


def test_phase_health_override_fields_and_new_metrics() -> None:
    """An override replaces scalar settings, replaces or appends thresholds, and keeps units."""
    text = with_phases(
        "  - phase: 1\n    name: One\n    risk: low\n    soak: 0s\n    set: {alpha: true}\n"
        "    health:\n      interval: 1m\n      failure_limit: 3\n"
        "      thresholds:\n        error_rate: {max: 3.0}\n        latency: {max: 50}\n"
        "        uptime: {max: 1}\n",
        top="health:\n  inconclusive_limit: 6\n  thresholds:\n"
        '    error_rate: {max: 5.0, unit: "%"}\n    uptime: {min: 99, unit: "%"}\n',
    )
    playbook = load_playbook_text(text)
    override = playbook.health_for(1)
    assert (override.interval, override.failure_limit, override.inconclusive_limit) == (60, 3, 6)
    assert [t.describe() for t in override.thresholds] == [
        "error_rate > 3%",
        "uptime > 1",
        "latency > 50",
    ]
    assert playbook.health.thresholds[0].limit == 5.0
    assert playbook.phases[0].soak == 0.0


def test_percentage_one_is_not_true() -> None:
    """Going from true to 1 (one percent) is a real change, not a no-op phase."""
    text = with_phases(
        "  - {phase: 1, name: One, risk: low, soak: 1m, set: {alpha: true}}\n"
        "  - {phase: 2, name: Two, risk: low, soak: 1m, set: {alpha: 1}}\n"
    )
    value = load_playbook_text(text).phase(2).state.get("alpha")
    assert value == 1 and value is not True


def test_serial_accepts_a_single_value() -> None:
    """A single serial value, count or percentage, becomes a one-entry tuple."""
    assert load_playbook_text(MINIMAL + "policy: {serial: 3}\n").policy.serial == (3,)
    assert load_playbook_text(MINIMAL + 'policy: {serial: "50%"}\n').policy.serial == ("50%",)


def test_emergency_may_target_the_baseline() -> None:
    """emergency.phase 0 is allowed and means every flag back at its default."""
    assert load_playbook_text(MINIMAL + "emergency: {phase: 0}\n").emergency.phase == 0


def test_command_source() -> None:
    """A command source keeps its command and timeout."""
    text = MINIMAL + "health:\n  source: {kind: command, command: /opt/bin/metrics, timeout: 5s}\n"
    source = load_playbook_text(text).source
    assert (source.kind, source.command, source.timeout) == (
        SourceKind.COMMAND,
        "/opt/bin/metrics",
        5.0,
    )


def test_prometheus_source_by_env() -> None:
    """A prometheus source names the URL's environment variable and keeps the queries."""
    text = MINIMAL + (
        "health:\n  source:\n    kind: prometheus\n    url_env: PROM_URL\n"
        '    queries: {error_rate: "sum(rate(errors[5m]))"}\n'
        "  thresholds: {error_rate: {max: 5}}\n"
    )
    source = load_playbook_text(text).source
    assert source.url_env == "PROM_URL" and source.url_file is None
    assert source.queries == (("error_rate", "sum(rate(errors[5m]))"),)


def test_prometheus_url_file_is_relative_to_the_playbook(tmp_path: Path) -> None:
    """A relative url_file is resolved against the playbook's own directory."""
    path = tmp_path / "pb.yml"
    path.write_text(
        MINIMAL + "health:\n  source: {kind: prometheus, url_file: prom.url, queries: {up: up}}\n"
    )
    assert load_playbook(path).source.url_file == str(tmp_path / "prom.url")


# -- the checklist and notification sections ------------------------------------------------


def test_reference_checklist_covers_the_five_categories(reference: Playbook) -> None:
    """The reference checklist has checks in all five categories, in the checklist's order."""
    checks = reference.checks.checks
    assert [c.category for c in checks] == sorted(
        (c.category for c in checks), key=list(CheckCategory).index
    )
    assert {c.category for c in checks} == set(CheckCategory)
    assert {c.kind for c in checks} == set(CheckKind)
    assert reference.checks.source_root == str(REFERENCE.parent / "../../foundation")


def test_reference_metric_checks_use_the_health_thresholds(reference: Playbook) -> None:
    """A metric check without max/min takes its limit from the playbook's health thresholds."""
    metric = {c.threshold.metric: c.threshold for c in reference.checks.checks
              if isinstance(c, MetricCheck)}  # fmt: skip
    assert metric["error_rate"] == Threshold("error_rate", Direction.MAX, 5.0, "%")
    assert metric["message_delivery_success"].direction is Direction.MIN


def test_reference_notifies_through_an_env_variable(reference: Playbook) -> None:
    """The reference webhook URL comes from ROLLOUT_WEBHOOK_URL and every event is notified."""
    webhook = reference.notify.webhook
    assert webhook is not None
    assert (webhook.url_env, webhook.url_file, webhook.timeout) == ("ROLLOUT_WEBHOOK_URL", None, 5)
    assert reference.notify.events == frozenset(NotifyKind)


def test_sections_default_to_empty_when_absent() -> None:
    """Without checks or notify sections there are no checks and no webhook."""
    playbook = load_playbook_text(MINIMAL)
    assert playbook.checks.checks == () and playbook.checks.source_root is None
    assert playbook.notify.webhook is None


def test_check_kinds_parse_into_typed_checks(tmp_path: Path) -> None:
    """Each kind of check becomes its dataclass, with regexes compiled and paths resolved."""
    path = tmp_path / "pb.yml"
    path.write_text(
        MINIMAL
        + "health: {thresholds: {error_rate: {max: 5}}}\n"
        + "checks:\n  source_root: src\n  categories:\n"
        + "    architecture:\n"
        + "      - {name: A, kind: pattern, paths: [lib/*.ex], forbid: ['spawn\\('],"
        + " exclude: [lib/x.ex]}\n"
        + "      - {name: B, kind: balance, paths: [lib/*.ex], open: 'a', close: 'b'}\n"
        + "    testing:\n"
        + "      - {name: C, kind: command, command: [mix, test], cwd: svc, timeout: 2m}\n"
        + "    operations:\n"
        + "      - {name: D, kind: metric, metric: error_rate, min: 1, unit: x}\n"
        + "      - {name: E, kind: command, where: hosts, command: ['true'], expect_exit: 1}\n"
    )
    config = load_playbook(path).checks
    assert config.source_root == str(tmp_path / "src")
    a, b, c, d, e = config.checks
    assert isinstance(a, PatternCheck) and a.forbid[0].search("spawn(x)")
    assert a.exclude == ("lib/x.ex",) and a.line == 10
    assert isinstance(b, BalanceCheck) and b.open.pattern == "a"
    assert isinstance(c, CommandCheck) and c.cwd == str(tmp_path / "svc")
    assert (c.where, c.command, c.timeout) == (CommandWhere.LOCAL, ("mix", "test"), 120)
    assert isinstance(d, MetricCheck)
    assert d.threshold == Threshold("error_rate", Direction.MIN, 1.0, "x")
    assert isinstance(e, CommandCheck) and (e.where, e.expect_exit) == (CommandWhere.HOSTS, 1)


def test_webhook_url_file_is_relative_to_the_playbook(tmp_path: Path) -> None:
    """A relative webhook url_file is resolved against the playbook's directory."""
    path = tmp_path / "pb.yml"
    path.write_text(MINIMAL + "notify:\n  webhook: {url_file: hook.url}\n  events: []\n")
    notify = load_playbook(path).notify
    assert notify.webhook is not None and notify.webhook.url_file == str(tmp_path / "hook.url")
    assert notify.events == frozenset()


@pytest.mark.parametrize(
    ("section", "key", "fragment"),
    [
        ("checks: {categories: {}}", "checks.categories", "lists no checks"),
        ("checks: {categories: {testing: []}}", "checks.categories.testing", "non-empty list"),
        (
            "checks: {categories: {testing: [{kind: reachability}]}}",
            "checks.categories.testing[1].name",
            "missing required key",
        ),
        (
            "checks: {categories: {testing: [{name: a, kind: pattern, paths: [x]}]}}",
            "checks.categories.testing[1]",
            "needs `forbid` or `require`",
        ),
        (
            "checks: {categories: {testing: [{name: a, kind: command, command: [a],"
            " where: hosts, cwd: x}]}}",
            "checks.categories.testing[1].cwd",
            "local commands only",
        ),
        (
            "checks: {categories: {testing: [{name: a, kind: reachability},"
            " {name: a, kind: reachability}]}}",
            "checks.categories.testing[2].name",
            "appears twice",
        ),
        (
            "checks: {categories: {testing: [{name: a, kind: metric, metric: up}]}}",
            "checks.categories.testing[1].metric",
            "not read from the hosts",
        ),
        ("notify: {webhook: {timeout: 1s}}", "notify.webhook", "needs `url_env` or `url_file`"),
        ("notify: {webhook: {url_env: lower}}", "notify.webhook.url_env", "not an environment"),
        (
            "notify: {webhook: {url_env: A, template: ../x.j2}}",
            "notify.webhook.template",
            "under templates/",
        ),
        ("notify: {events: [deploy.start, deploy.start]}", "notify.events[2]", "listed twice"),
    ],
)
def test_bad_check_and_notify_sections_are_refused(section: str, key: str, fragment: str) -> None:
    """Mistakes in checks/notify name the key path and say what is wrong."""
    error = refused(MINIMAL + section + "\n")
    assert error.location is not None and error.location.key == key
    assert fragment in error.message


# -- bad input, one data file per case -------------------------------------------------------

#: file -> (line, key, a fragment of the message)
CASES: dict[str, tuple[int, str | None, str]] = {
    "bad_top_key_typo.yml": (12, "polcy", "unknown key"),
    "bad_phase_key_typo.yml": (10, "phases[1].sok", "unknown key 'sok'"),
    "bad_missing_flags.yml": (2, "flags", "missing required key `flags`"),
    "bad_missing_soak.yml": (7, "phases[1].soak", "missing required key `soak`"),
    "bad_empty_phases.yml": (6, "phases", "non-empty list"),
    "bad_not_mapping.yml": (1, None, "not a mapping"),
    "bad_rollout_name.yml": (2, "rollout", "not a plain identifier"),
    "bad_flag_name.yml": (5, "flags.'a;b'", "not a plain identifier"),
    "bad_flag_default.yml": (5, "flags.beta", "must be true or false"),
    "bad_unknown_flag.yml": (13, "phases[1].set.betta", "not in `flags`"),
    "bad_value_string.yml": (11, "phases[1].set.alpha", "not 'true'"),
    "bad_value_float.yml": (11, "phases[1].set.alpha", "not 12.5"),
    "bad_value_zero.yml": (17, "phases[2].set.beta", "percentage of 0"),
    "bad_value_over.yml": (11, "phases[1].set.alpha", "outside 1..100"),
    "bad_value_null.yml": (12, "phases[1].set.alpha", "not null"),
    "bad_duplicate_phase.yml": (12, "phases[2].phase", "appears twice (first at line 7)"),
    "bad_phase_gap.yml": (12, "phases[2].phase", "expected phase 2 here, got phase 3"),
    "bad_phase_order.yml": (7, "phases[1].phase", "expected phase 1 here, got phase 2"),
    "bad_noop_phase.yml": (16, "phases[2].set", "phase 2 changes nothing"),
    "bad_duration.yml": (10, "phases[1].soak", "expected a duration"),
    "bad_risk.yml": (9, "phases[1].risk", "unknown risk 'extreme'"),
    "bad_name_control.yml": (8, "phases[1].name", "control character '\\x1b'"),
    "bad_name_long.yml": (8, "phases[1].name", "81 characters"),
    "bad_validation_multiline.yml": (12, "phases[1].validation", "line break"),
    "bad_gate_value.yml": (12, "phases[1].gates.backup", "must be true or false"),
    "bad_threshold_no_bound.yml": (8, "health.thresholds.error_rate", "exactly one of"),
    "bad_threshold_both.yml": (10, "health.thresholds.error_rate", "exactly one of"),
    "bad_threshold_key.yml": (8, "health.thresholds.error_rate.units", "unknown key 'units'"),
    "bad_limit_text.yml": (9, "health.thresholds.error_rate.max", "must be a number"),
    "bad_metric_name.yml": (8, "health.thresholds.Error-Rate", "not a plain identifier"),
    "bad_failure_limit.yml": (7, "health.failure_limit", "positive whole number"),
    "bad_inconclusive_limit.yml": (7, "health.inconclusive_limit", "positive whole number"),
    "bad_interval.yml": (7, "health.interval", "longer than zero"),
    "bad_source_kind.yml": (8, "health.source.kind", "unknown source kind 'graphite'"),
    "bad_command_source.yml": (8, "health.source", "needs `command`"),
    "bad_console_extra.yml": (9, "health.source.command", "unknown key 'command'"),
    "bad_prometheus_no_url.yml": (8, "health.source", "needs `url_env` or `url_file`"),
    "bad_prometheus_no_queries.yml": (8, "health.source", "needs `queries`"),
    "bad_prometheus_url.yml": (9, "health.source.url", "may carry a secret"),
    "bad_prometheus_missing_query.yml": (
        13,
        "health.thresholds.restart_frequency",
        "no query for metric",
    ),
    "bad_phase_health_source.yml": (13, "phases[1].health.source", "unknown key 'source'"),
    "bad_serial_zero.yml": (7, "policy.serial[2]", "bad batch size 0"),
    "bad_serial_percent.yml": (9, "policy.serial[2]", "bad batch size '150%'"),
    "bad_serial_text.yml": (7, "policy.serial", "bad batch size 'half'"),
    "bad_max_fail.yml": (7, "policy.max_fail_percentage", "outside 0..100"),
    "bad_emergency_phase.yml": (7, "emergency.phase", "does not exist"),
    "bad_yaml_syntax.yml": (9, None, "not valid YAML"),
    "bad_duplicate_key.yml": (11, "soak", "duplicate key 'soak'"),
    "bad_python_tag.yml": (12, None, "python/object/apply"),
    "bad_check_kind.yml": (13, "checks.categories.architecture[1].kind", "unknown check kind"),
    "bad_check_regex.yml": (17, "checks.categories.architecture[1].forbid[2]", "bad regex"),
    "bad_check_key_typo.yml": (15, "checks.categories.testing[1].forbd", "unknown key 'forbd'"),
    "bad_check_category.yml": (12, "checks.categories.architectur", "unknown key"),
    "bad_check_command_string.yml": (14, "checks.categories.testing[1].command", "list of"),
    "bad_check_metric_unknown.yml": (
        12,
        "checks.categories.operations[1].metric",
        "not read from the hosts",
    ),
    "bad_check_glob_escape.yml": (
        14,
        "checks.categories.architecture[1].paths[2]",
        "leaves the source tree",
    ),
    "bad_notify_url.yml": (11, "notify.webhook.url", "a webhook URL is a secret"),
    "bad_notify_event.yml": (11, "notify.events[2]", "unknown event 'deploy.finished'"),
    "bad_notify_timeout.yml": (12, "notify.webhook.timeout", "holds up the rollout"),
    "bad_wave_size.yml": (13, "phases[1].waves[2].hosts", "bad wave size '100%'"),
    "bad_wave_shrinks.yml": (13, "phases[1].waves[2].hosts", "does not grow past wave 1"),
    "bad_wave_key.yml": (12, "phases[1].waves[1].weight", "unknown key 'weight'"),
    "bad_compare_confidence.yml": (
        9,
        "health.thresholds.error_rate.compare.confidence",
        "outside 0.5..0.999",
    ),
    "bad_compare_no_direction.yml": (
        8,
        "health.thresholds.latency_p99.compare.direction",
        "no threshold to take",
    ),
    "bad_compare_prometheus.yml": (
        8,
        "health.thresholds.error_rate.compare",
        "needs one sample per host",
    ),
    "bad_judgement_order.yml": (3, "judgement.marginal", "marginal 90 is above pass 70"),
}

#: file -> a fragment the hint must contain, where the hint is the point of the case
HINTS = {
    "bad_phase_key_typo.yml": "did you mean `soak`?",
    "bad_top_key_typo.yml": "did you mean `policy`?",
    "bad_threshold_key.yml": "did you mean `unit`?",
    "bad_unknown_flag.yml": "known flags: alpha, beta",
    "bad_value_zero.yml": (
        "use false: a percentage of 0 is truthy wherever the service calls enabled?/1"
    ),
    "bad_prometheus_url.yml": "url_env",
    "bad_phase_health_source.yml": "top-level `health`",
    "bad_risk.yml": "low, medium, high",
    "bad_check_kind.yml": "pattern, balance, reachability, metric, command",
    "bad_check_key_typo.yml": "did you mean `forbid`?",
    "bad_check_category.yml": "did you mean `architecture`?",
    "bad_check_command_string.yml": "never go through a shell",
    "bad_check_metric_unknown.yml": "did you mean `error_rate`?",
    "bad_notify_url.yml": "url_env",
    "bad_notify_event.yml": "did you mean `deploy.finish`?",
}


def test_every_bad_file_has_a_case() -> None:
    """Each bad_*.yml data file is listed in the table, and each entry has a file."""
    assert sorted(p.name for p in BAD.glob("bad_*.yml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_playbook_is_refused_precisely(name: str) -> None:
    """Each bad playbook fails with a PlaybookError naming its file, line and key, and a hint."""
    line, key, fragment = CASES[name]
    with pytest.raises(PlaybookError) as info:
        load_playbook(BAD / name)
    error = info.value
    assert error.location is not None
    assert error.location.file == str(BAD / name)
    assert (error.location.line, error.location.key) == (line, key)
    assert fragment in error.message
    assert error.hint
    assert HINTS.get(name, "") in error.hint
    assert error.exit_code is ExitCode.BAD_INPUT


# -- hostile names and values ----------------------------------------------------------------


@pytest.mark.parametrize(
    "flag",
    ['"a;b"', '"alpha\\n"', '"Alpha"', '"x$(reboot)"', '"' + "a" * 64 + '"', "1", "true", '"é"'],
)
def test_hostile_flag_names_are_refused(flag: str) -> None:
    """Flag names outside the plain-identifier pattern are refused, a trailing newline too."""
    error = refused(f"rollout: demo\nflags:\n  {flag}: false\nphases: []\n")
    assert error.location is not None and error.location.line == 3
    assert "not a plain identifier" in error.message


@pytest.mark.parametrize(
    "text",
    [
        '"One\\u202eenO"',  # right-to-left override
        '"One\\u2028Two"',  # Unicode line separator
        '"One\\rTwo"',
        '"One\\x00"',
        '"One\\tTwo"',
        '""',
        "[One]",
        "42",
    ],
)
def test_hostile_phase_names_are_refused(text: str) -> None:
    """Phase names must be non-empty single-line text without control or bidi characters."""
    error = refused(
        with_phases(f"  - {{phase: 1, name: {text}, risk: low, soak: 1m, set: {{alpha: true}}}}\n")
    )
    assert error.location is not None and error.location.key == "phases[1].name"


@pytest.mark.parametrize("name", ['"../etc"', '"a b"', '"x\\n"', '"-x"', '"' + "a" * 65 + '"'])
def test_hostile_rollout_names_are_refused(name: str) -> None:
    """The rollout name is a plain identifier, since it keys the ledger."""
    error = refused(MINIMAL.replace("rollout: demo", f"rollout: {name}"))
    assert error.location is not None and error.location.key == "rollout"


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ('"10%"', "without quotes or '%': 10"),
        ('"on"', "without quotes"),
        ("-1", "1 to 100"),
        ("101", "1 to 100"),
        ("10.0", "whole numbers"),
        ("[true]", "1 to 100"),
    ],
)
def test_bad_flag_values_carry_a_hint(value: str, hint: str) -> None:
    """Flag values other than booleans and whole percentages 1..100 are refused with a hint."""
    error = refused(
        with_phases(f"  - {{phase: 1, name: One, risk: low, soak: 1m, set: {{alpha: {value}}}}}\n")
    )
    assert error.hint is not None and hint in error.hint


@pytest.mark.parametrize("soak", ["-5", "-5s", ".inf", "true", "5 hours", "[1m]"])
def test_bad_durations_are_refused(soak: str) -> None:
    """Negative, infinite, boolean and unit-less-word durations are refused."""
    error = refused(
        with_phases(f"  - {{phase: 1, name: One, risk: low, soak: {soak}, set: {{alpha: true}}}}\n")
    )
    assert error.location is not None and error.location.key == "phases[1].soak"


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("{kind: prometheus, url_env: 'prom url', queries: {up: up}}", "health.source.url_env"),
        (
            "{kind: prometheus, url_env: A, url_file: b, queries: {up: up}}",
            "health.source.url_file",
        ),
        ('{kind: command, command: "metrics\\nrm -rf /"}', "health.source.command"),
        ("{kind: Console}", "health.source.kind"),
        ("{timeout: 5s}", "health.source"),
        ("{kind: console, timeout: 0s}", "health.source.timeout"),
    ],
)
def test_hostile_sources_are_refused(source: str, key: str) -> None:
    """Metrics sources with bad env names, two URLs, multi-line commands or odd kinds fail."""
    error = refused(MINIMAL + f"health:\n  source: {source}\n")
    assert error.location is not None and error.location.key == key


@pytest.mark.parametrize(
    ("policy", "key"),
    [
        ("{serial: [true]}", "policy.serial[1]"),
        ("{serial: []}", "policy.serial"),
        ('{serial: ["0%"]}', "policy.serial[1]"),
        ('{serial: ["2.5%"]}', "policy.serial[1]"),
        ("{max_fail_percentage: -1}", "policy.max_fail_percentage"),
        ("{max_fail_percentage: true}", "policy.max_fail_percentage"),
        ("{connect_timeout: 0}", "policy.connect_timeout"),
        ("{forks: 5}", "policy.forks"),
    ],
)
def test_bad_policies_are_refused(policy: str, key: str) -> None:
    """Serial entries, failure percentages and timeouts outside their ranges are refused."""
    error = refused(MINIMAL + f"policy: {policy}\n")
    assert error.location is not None and error.location.key == key


@pytest.mark.parametrize("phase", ["true", "-1", '"1"', "1.0"])
def test_bad_emergency_phases_are_refused(phase: str) -> None:
    """emergency.phase must be a whole number naming the baseline or an existing phase."""
    error = refused(MINIMAL + f"emergency: {{phase: {phase}}}\n")
    assert error.location is not None and error.location.key == "emergency.phase"


def test_phase_number_must_be_an_int() -> None:
    """A boolean phase number is refused instead of being read as 1."""
    error = refused(
        with_phases("  - {phase: true, name: One, risk: low, soak: 1m, set: {alpha: true}}\n")
    )
    assert error.location is not None and error.location.key == "phases[1].phase"


def test_error_text_names_file_line_and_next_step() -> None:
    """str() of an error reads as file:line (key), the problem, then what to do next."""
    error = refused(with_phases("  - {phase: 1, name: One, risk: low, sok: 1m, set: {}}\n"))
    assert str(error) == (
        "test.yml:4 (phases[1].sok): unknown key 'sok'\n  next: did you mean `soak`?"
    )


def test_missing_file_is_a_playbook_error(tmp_path: Path) -> None:
    """A playbook path that does not exist fails as a PlaybookError."""
    with pytest.raises(PlaybookError, match="no such file"):
        load_playbook(tmp_path / "nope.yml")


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    """A file over 1 MB is refused before it is parsed."""
    path = tmp_path / "big.yml"
    path.write_text(MINIMAL + "#" * 1_000_001 + "\n")
    with pytest.raises(PlaybookError, match="bytes"):
        load_playbook(path)


def test_empty_document_is_refused() -> None:
    """An empty file is refused with a hint about the top-level keys."""
    error = refused("")
    assert "empty" in error.message
    assert error.hint is not None and "rollout, flags and phases" in error.hint
