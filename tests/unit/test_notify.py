"""Notifications: JSON bodies, real HTTP webhooks that fail or hang, and a URL that never leaks."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rollout.errors import TemplateError
from rollout.events import Collector, Event, Kind
from rollout.ledger import Ledger
from rollout.models import NotifyConfig, NotifyKind, Secret, WebhookConfig
from rollout.notify import (
    MASK,
    Delivery,
    HttpReply,
    Notification,
    Notifier,
    NotifyOutcome,
    post_json,
    render_notification,
    scrub,
)

TOKEN = "SECRET-canary-123"
HOOK = f"/hooks/T000/{TOKEN}"
ENV = "ROLLOUT_WEBHOOK_URL"
TIMEOUT = 0.5

ROLLBACK = Notification(
    kind=NotifyKind.ROLLBACK_AUTO,
    inventory="prod",
    phase=3,
    target_phase=2,
    reason='error_rate 7.5% > 5% on web3 "quoted" \\ <!channel>\nsecond line',
    who="alice",
    summary="Rolled back to phase 2; verified on 3 hosts",
    hosts_failed=("web3",),
    run_id="r-20260101-0000-abcd",
)


# -- real local webhooks ---------------------------------------------------------------------


@dataclass
class Webhook:
    """A real HTTP server on 127.0.0.1 in a thread, answering each POST per ``mode``."""

    mode: str  # "ok", "500", "hang" or "redirect"
    bodies: list[bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[Mapping[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                hook.bodies.append(self.rfile.read(length))
                hook.paths.append(self.path)
                hook.headers.append(dict(self.headers))
                if hook.mode == "hang":
                    hook.release.wait(30)  # accepted and read, never answered
                    return
                status = {"ok": 200, "500": 500, "redirect": 302}[hook.mode]
                reply = {"ok": b"ok", "500": b"internal_error", "redirect": b""}[hook.mode]
                self.send_response(status)
                if hook.mode == "redirect":
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}{HOOK}"

    def stop(self) -> None:
        self.release.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def webhook_factory() -> Iterator[type[Webhook]]:
    """Webhook servers for a test; every one started is stopped afterwards."""
    started: list[Webhook] = []

    class Tracked(Webhook):
        def start(self) -> str:
            started.append(self)
            return super().start()

    yield Tracked
    for hook in started:
        hook.stop()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    """A real SQLite ledger in a directory of its own."""
    with Ledger(tmp_path / "ledger" / "ledger.db", who="tester", where="here", pid=1) as led:
        yield led


def no_proxy(url: str, body: bytes, timeout: float) -> HttpReply:
    """The real urllib poster, with the environment's proxies turned off (hermetic)."""
    return post_json(url, body, timeout, proxies={})


def notifier(
    ledger: Ledger,
    events: Collector,
    url: str | None,
    *,
    template: str = "notify/slack.json.j2",
    kinds: frozenset[NotifyKind] = frozenset(NotifyKind),
) -> tuple[Notifier, str]:
    """A Notifier over the real ledger (a fresh run) whose URL comes from a fake environment."""
    run = ledger.start_run("prod", "deploy", ["deploy", "--phase", "3"])
    config = NotifyConfig(WebhookConfig(url_env=ENV, timeout=TIMEOUT, template=template), kinds)
    environ = {ENV: url} if url is not None else {}

    def record(kind: str, data: Mapping[str, object]) -> None:
        ledger.event(run.id, kind, data)

    return Notifier(config, events, record, environ=environ, post=no_proxy), run.id


def timed_send(
    note: Notifier, notification: Notification = ROLLBACK
) -> tuple[NotifyOutcome, float]:
    """Send and measure how long the caller was held."""
    started = time.monotonic()
    outcome = note.send(notification)
    return outcome, time.monotonic() - started


def assert_no_secret(
    ledger: Ledger, events: Collector, *texts: object, capsys: pytest.CaptureFixture[str]
) -> None:
    """The token appears in no event, no ledger byte on disk, no given text and no output."""
    for event in events.events:
        assert TOKEN not in repr(event) and TOKEN not in json.dumps(event.to_json(), default=str)
    for path in ledger.path.parent.iterdir():  # the database, its WAL and shared memory
        assert TOKEN.encode() not in path.read_bytes(), path
    for text in texts:
        assert TOKEN not in str(text) and TOKEN not in repr(text)
    out, err = capsys.readouterr()
    assert TOKEN not in out and TOKEN not in err


# -- delivery --------------------------------------------------------------------------------


def test_posts_a_slack_body_and_records_it(
    webhook_factory: type[Webhook], ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    """A notification is POSTed as Slack JSON, and the outcome is an event and a ledger row."""
    hook = webhook_factory("ok")
    events = Collector()
    note, run_id = notifier(ledger, events, hook.start())
    outcome = note.send(ROLLBACK)
    assert outcome.delivery is Delivery.SENT and outcome.http_status == 200
    assert hook.paths == [HOOK]
    assert hook.headers[0]["Content-Type"].startswith("application/json")
    body = json.loads(hook.bodies[0])
    assert body["text"].startswith("*Automatic rollback: prod* (phase 3 -> 2)\n")
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]
    assert body["blocks"][2]["elements"][0]["text"] == "by alice | run r-20260101-0000-abcd"
    [event] = events.of(Kind.NOTIFY)
    assert event.ok is True and event.message == "notified rollback.auto (HTTP 200)"
    [row] = [e for e in ledger.events(run_id) if e.kind == "notify"]
    assert row.data["delivery"] == "sent" and row.data["target_phase"] == 2
    assert_no_secret(ledger, events, outcome, capsys=capsys)


def test_values_are_json_escaped_and_slack_markup_neutralised(
    webhook_factory: type[Webhook], ledger: Ledger
) -> None:
    """Quotes, backslashes and newlines survive as JSON; <!channel> cannot ping anyone."""
    hook = webhook_factory("ok")
    note, _ = notifier(ledger, Collector(), hook.start())
    note.send(ROLLBACK)
    text = json.loads(hook.bodies[0])["text"]
    assert '"quoted" \\ &lt;!channel&gt;\nsecond line' in text
    assert "<!channel>" not in text


def test_generic_template_carries_every_field() -> None:
    """The generic template renders the whole notification as JSON values."""
    body = json.loads(render_notification(ROLLBACK, "notify/generic.json.j2"))
    assert body["notification"] == ROLLBACK.as_data()
    assert body["text"] == "rollback.auto prod -> phase 2: " + ROLLBACK.summary


def test_http_500_is_recorded_and_returns_promptly(
    webhook_factory: type[Webhook], ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    """A webhook answering 500 fails the notification, not the caller, within the timeout."""
    hook = webhook_factory("500")
    events = Collector()
    note, run_id = notifier(ledger, events, hook.start())
    outcome, took = timed_send(note)
    assert took < TIMEOUT + 1
    assert (outcome.delivery, outcome.http_status) == (Delivery.FAILED, 500)
    assert outcome.error == "HTTP 500: internal_error"
    note.send(ROLLBACK)
    event = events.of(Kind.NOTIFY)[0]
    assert event.ok is False and "HTTP 500" in event.message
    assert [e.data["delivery"] for e in ledger.events(run_id) if e.kind == "notify"] == [
        "failed",
        "failed",
    ]
    assert_no_secret(ledger, events, outcome, capsys=capsys)


def test_a_webhook_that_never_answers_costs_at_most_the_timeout(
    webhook_factory: type[Webhook], ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that accepts and hangs times out after `timeout`; the caller goes on."""
    hook = webhook_factory("hang")
    events = Collector()
    note, run_id = notifier(ledger, events, hook.start())
    outcome, took = timed_send(note)
    assert took < TIMEOUT + 1
    assert outcome.delivery is Delivery.TIMED_OUT
    assert events.of(Kind.NOTIFY)[0].ok is False
    [row] = [e for e in ledger.events(run_id) if e.kind == "notify"]
    assert row.data["delivery"] == "timed_out"
    assert_no_secret(ledger, events, outcome, capsys=capsys)


def test_a_refused_connection_fails_quietly(ledger: Ledger) -> None:
    """Nothing listening on the port: the notification fails with a reason and no exception."""
    events = Collector()
    note, _ = notifier(ledger, events, f"http://127.0.0.1:9{HOOK}")
    outcome, took = timed_send(note)
    assert took < TIMEOUT + 1
    assert outcome.delivery is Delivery.FAILED
    assert TOKEN not in (outcome.error or "")


def test_redirects_are_not_followed(webhook_factory: type[Webhook], ledger: Ledger) -> None:
    """A webhook answering 302 fails the notification; nothing is posted to the new place."""
    hook = webhook_factory("redirect")
    note, _ = notifier(ledger, Collector(), hook.start())
    outcome = note.send(ROLLBACK)
    assert (outcome.delivery, outcome.http_status) == (Delivery.FAILED, 302)
    assert hook.paths == [HOOK]


# -- the secret ------------------------------------------------------------------------------


def test_errors_that_quote_the_url_are_scrubbed(
    ledger: Ledger, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """If the HTTP layer raises with the URL (or its path, quoted or encoded), it is masked."""
    url = f"https://hooks.example.com{HOOK}?token={TOKEN}x"

    def leaky(target: str, body: bytes, timeout: float) -> HttpReply:
        raise OSError(f"cannot POST {target} ({target.split('.com')[1]!r}, {TOKEN})")

    events = Collector()
    run = ledger.start_run("prod", "deploy", [])
    config = NotifyConfig(WebhookConfig(url_env=ENV, timeout=TIMEOUT))
    note = Notifier(
        config,
        events,
        lambda kind, data: ledger.event(run.id, kind, data),
        environ={ENV: url},
        post=leaky,
    )
    outcome = note.send(ROLLBACK)
    assert outcome.delivery is Delivery.FAILED
    assert outcome.error is not None and outcome.error.startswith("OSError: cannot POST ********")
    assert_no_secret(ledger, events, outcome, note, note.config, capsys=capsys)
    assert TOKEN not in caplog.text


def test_scrub_masks_the_url_and_its_distinctive_parts() -> None:
    """scrub replaces the URL, its path, its long segments and their encoded forms."""
    secret = Secret(f"https://user:pw-123456@hooks.example.com{HOOK}?t=abcdef123")
    text = (
        f"{secret.reveal()} | {HOOK} | {TOKEN} | SECRET%2Dcanary | pw-123456 | abcdef123"
        " | hooks.example.com"
    )
    out = scrub(text, secret)
    for leak in (TOKEN, "pw-123456", "abcdef123"):
        assert leak not in out
    assert out.endswith("| hooks.example.com")  # the host alone is not secret
    assert MASK in out
    assert scrub("nothing", None) == "nothing"


# -- no webhook ------------------------------------------------------------------------------


def test_without_a_url_notifications_go_to_the_ledger_only(ledger: Ledger) -> None:
    """Without the variable nothing is POSTed; each notification is journaled; one info says so."""
    events = Collector()
    posted: list[str] = []

    def never(url: str, body: bytes, timeout: float) -> HttpReply:
        posted.append(url)
        return HttpReply(200, "")

    run = ledger.start_run("prod", "deploy", [])
    note = Notifier(
        NotifyConfig(WebhookConfig(url_env=ENV)),
        events,
        lambda kind, data: ledger.event(run.id, kind, data),
        environ={},
        post=never,
    )
    assert not note.configured
    assert note.send(ROLLBACK).delivery is Delivery.NOT_CONFIGURED
    assert note.send(ROLLBACK).delivery is Delivery.NOT_CONFIGURED
    assert posted == []
    [info] = events.of(Kind.INFO)
    assert info.message == (
        "no webhook URL: $ROLLOUT_WEBHOOK_URL is not set;"
        " notifications are recorded in the ledger only"
    )
    assert [e.data["delivery"] for e in ledger.events(run.id) if e.kind == "notify"] == [
        "not_configured",
        "not_configured",
    ]


def test_no_webhook_section_records_only() -> None:
    """A playbook without a webhook still journals notifications."""
    records: list[str] = []
    events = Collector()
    note = Notifier(NotifyConfig(), events, lambda kind, data: records.append(kind))
    assert note.send(ROLLBACK).delivery is Delivery.NOT_CONFIGURED
    assert records == ["notify"] and len(events.of(Kind.INFO)) == 1


def test_url_file_is_read(webhook_factory: type[Webhook], tmp_path: Path) -> None:
    """A URL in url_file is used, surrounding whitespace ignored."""
    hook = webhook_factory("ok")
    (tmp_path / "hook.url").write_text(f"  {hook.start()}\n")
    config = NotifyConfig(WebhookConfig(url_file=str(tmp_path / "hook.url"), timeout=TIMEOUT))
    note = Notifier(config, Collector(), lambda kind, data: None, post=no_proxy)
    assert note.send(ROLLBACK).delivery is Delivery.SENT and hook.paths == [HOOK]


@pytest.mark.parametrize(
    ("url", "why"),
    [
        (f"file:///etc/{TOKEN}", "is not an http(s) URL"),
        (f"http://127.0.0.1:1/{TOKEN} x", "contains spaces or control characters"),
    ],
)
def test_unusable_urls_are_refused_without_quoting_them(url: str, why: str) -> None:
    """A URL that is not plain http(s) is not used; the warning names the variable, not the URL."""
    events = Collector()
    config = NotifyConfig(WebhookConfig(url_env=ENV))
    note = Notifier(config, events, lambda kind, data: None, environ={ENV: url})
    assert note.send(ROLLBACK).delivery is Delivery.NOT_CONFIGURED
    [warning] = events.of(Kind.WARNING)
    assert f"$ROLLOUT_WEBHOOK_URL {why}" in warning.message or why in warning.message
    assert all(TOKEN not in repr(e) for e in events.events)


# -- robustness ------------------------------------------------------------------------------


def test_events_not_listed_are_not_sent_or_recorded() -> None:
    """A kind missing from notify.events is neither POSTed nor journaled."""
    records: list[str] = []
    config = NotifyConfig(WebhookConfig(url_env=ENV), frozenset({NotifyKind.DEPLOY_START}))
    note = Notifier(config, Collector(), lambda k, d: records.append(k), environ={})
    assert note.send(ROLLBACK).delivery is Delivery.NOT_SUBSCRIBED
    assert records == []


def test_a_failing_journal_or_emitter_never_reaches_the_caller() -> None:
    """Errors from the ledger callback or the emitter are contained."""

    def broken_ledger(kind: str, data: Mapping[str, object]) -> None:
        raise RuntimeError("disk full")

    events = Collector()
    note = Notifier(NotifyConfig(), events, broken_ledger)
    assert note.send(ROLLBACK).delivery is Delivery.NOT_CONFIGURED
    assert "could not journal notification rollback.auto: RuntimeError: disk full" in [
        e.message for e in events.of(Kind.WARNING)
    ]

    def broken_emit(event: Event) -> None:
        raise RuntimeError("closed stream")

    Notifier(NotifyConfig(), broken_emit, lambda k, d: None).send(ROLLBACK)


def test_a_missing_template_is_refused_at_construction() -> None:
    """A template that does not exist is a TemplateError before anything is sent."""
    config = NotifyConfig(WebhookConfig(url_env=ENV, template="notify/nope.json.j2"))
    with pytest.raises(TemplateError, match="nope.json.j2 not found"):
        Notifier(config, Collector(), lambda k, d: None, environ={})


def test_a_template_that_builds_bad_json_is_refused(tmp_path: Path) -> None:
    """A template that concatenates values by hand, producing invalid JSON, is refused."""
    (tmp_path / "notify").mkdir()
    (tmp_path / "notify" / "bad.json.j2").write_text('{"text": "{{ n.reason }}"}')
    config = NotifyConfig(WebhookConfig(url_env=ENV, template="notify/bad.json.j2"))
    with pytest.raises(TemplateError, match="did not render valid JSON"):
        Notifier(config, Collector(), lambda k, d: None, environ={}, templates=tmp_path)


@pytest.mark.parametrize(
    "error", [TimeoutError("timed out"), urllib.error.URLError(TimeoutError("timed out"))]
)
def test_urllib_deadline_counts_as_a_timeout(error: BaseException) -> None:
    """When urllib's own socket timeout fires first, the outcome is still TIMED_OUT."""

    def slow(url: str, body: bytes, timeout: float) -> HttpReply:
        raise error

    config = NotifyConfig(WebhookConfig(url_env=ENV, timeout=TIMEOUT))
    note = Notifier(config, Collector(), lambda k, d: None, environ={ENV: "http://h/x"}, post=slow)
    outcome = note.send(ROLLBACK)
    assert (outcome.delivery, outcome.error) == (Delivery.TIMED_OUT, "no answer within 0.5s")
