"""Metrics sources: a command on each host, and a real (local) Prometheus-compatible API."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from rollout.metrics import parse_metrics_json, take_round
from rollout.models import Direction, MetricsSource, SourceKind, Threshold
from rollout.monitor import Verdict, judge
from rollout.testing import FakeBackend, FakeHost
from rollout.transport.base import CommandResult

T = (
    Threshold("error_rate", Direction.MAX, 5.0),
    Threshold("message_delivery_success", Direction.MIN, 95.0),
)
FLAGS = ("use_a",)


def test_parse_metrics_json_keeps_only_finite_numbers() -> None:
    """Non-numbers, booleans and NaN from a metrics command become gaps, never values."""
    values, raw = parse_metrics_json(
        '{"error_rate": "7", "message_delivery_success": true}',
        ["error_rate", "message_delivery_success"],
    )
    assert values == {"error_rate": None, "message_delivery_success": None}
    values, _ = parse_metrics_json('noise\n{"error_rate": 1.5}', ["error_rate"])
    assert values == {"error_rate": 1.5}
    with pytest.raises(ValueError):
        parse_metrics_json("[1, 2]", ["error_rate"])


def test_command_source_samples_every_host() -> None:
    """A command source runs the command on each host and judges its JSON output."""

    def handler(fake: FakeHost, argv: tuple[str, ...]) -> CommandResult:
        rate = 9.0 if fake.name == "b" else 1.0
        out = json.dumps({"error_rate": rate, "message_delivery_success": 99.0})
        return CommandResult(fake.name, " ".join(argv), 0, out, "", 0.01)

    fakes = {n: FakeHost(n, FLAGS, handler=handler) for n in ("a", "b")}
    source = MetricsSource(SourceKind.COMMAND, command="/usr/local/bin/health --json")
    rnd = take_round(source, FakeBackend(fakes), ["a", "b"], T, base_dir=Path("."))
    assert fakes["a"].commands[-1] == ("/usr/local/bin/health", "--json")
    poll = judge(rnd.samples, T)
    assert poll.verdict is Verdict.BREACH and poll.breaches[0].host == "b"
    assert rnd.flags["a"] == {"use_a": False}


def test_failing_command_is_inconclusive() -> None:
    """A metrics command that exits non-zero gives an inconclusive sample for that host."""

    def handler(fake: FakeHost, argv: tuple[str, ...]) -> CommandResult:
        return CommandResult(fake.name, " ".join(argv), 3, "", "boom", 0.01)

    fakes = {"a": FakeHost("a", FLAGS, handler=handler)}
    source = MetricsSource(SourceKind.COMMAND, command="health")
    rnd = take_round(source, FakeBackend(fakes), ["a"], T, base_dir=Path("."))
    assert judge(rnd.samples, T).verdict is Verdict.INCONCLUSIVE


class Prometheus(BaseHTTPRequestHandler):
    """Answers /api/v1/query like Prometheus, from a dict query -> list of values."""

    answers: dict[str, list[str]] = {}
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        query = parse_qs(url.query)["query"][0]
        self.seen.append(url.path)
        values = self.answers.get(query)
        if values is None:
            self.send_response(500)
            self.end_headers()
            return
        body = {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    {"metric": {"instance": f"i{i}"}, "value": [0, v]} for i, v in enumerate(values)
                ],
            },
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def prometheus() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Prometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/prefix/SECRET-token-42"
    finally:
        server.shutdown()


def prom_source() -> MetricsSource:
    return MetricsSource(
        SourceKind.PROMETHEUS,
        url_env="PROM_URL",
        timeout=3.0,
        queries=(("error_rate", "q_err"), ("message_delivery_success", "q_msg")),
    )


def test_prometheus_worst_series_decides(prometheus: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Prometheus source takes the worst series per metric, by the threshold's direction."""
    monkeypatch.setenv("PROM_URL", prometheus)
    Prometheus.answers = {"q_err": ["0.5", "6.5"], "q_msg": ["99", "96"]}
    fakes = {"a": FakeHost("a", FLAGS)}
    rnd = take_round(prom_source(), FakeBackend(fakes), ["a"], T, base_dir=Path("."))
    (sample,) = rnd.samples
    assert sample.values == {"error_rate": 6.5, "message_delivery_success": 96.0}
    assert Prometheus.seen[-1] == "/prefix/SECRET-token-42/api/v1/query"
    assert judge(rnd.samples, T).verdict is Verdict.BREACH


def test_prometheus_nan_and_errors_are_gaps_without_leaking_url(
    prometheus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NaN and HTTP errors from Prometheus are inconclusive, and the URL is never shown."""
    monkeypatch.setenv("PROM_URL", prometheus)
    Prometheus.answers = {"q_err": ["NaN"], "q_msg": ["99"]}
    rnd = take_round(
        prom_source(), FakeBackend({"a": FakeHost("a", FLAGS)}), ["a"], T, base_dir=Path(".")
    )
    assert judge(rnd.samples, T).verdict is Verdict.INCONCLUSIVE
    Prometheus.answers = {}
    rnd = take_round(
        prom_source(), FakeBackend({"a": FakeHost("a", FLAGS)}), ["a"], T, base_dir=Path(".")
    )
    (sample,) = rnd.samples
    assert sample.error is not None and "HTTP 500" in sample.error
    assert "SECRET" not in sample.error


def test_prometheus_unset_url_is_inconclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing URL variable makes the sample inconclusive, naming the variable."""
    monkeypatch.delenv("PROM_URL", raising=False)
    rnd = take_round(
        prom_source(), FakeBackend({"a": FakeHost("a", FLAGS)}), ["a"], T, base_dir=Path(".")
    )
    assert rnd.samples[0].error is not None and "PROM_URL" in rnd.samples[0].error
