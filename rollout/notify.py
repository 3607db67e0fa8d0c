"""Notifications: a typed record, rendered by a template (:mod:`rollout.notification`),
POSTed to a webhook.

:class:`Notifier` guarantees, for every :meth:`Notifier.send` (``docs/notifications.md``):

- it never raises, and never holds the caller longer than the webhook's ``timeout`` (plus a
  few milliseconds): the POST runs in a daemon thread that the caller joins with that timeout,
  so a webhook that accepts the connection and never answers, a slow DNS lookup, or a 500 do
  not hold up or fail a rollout;
- the outcome (sent with its HTTP status, failed and why, timed out, or not sent because no
  URL is configured) is emitted as a ``notify`` event and handed to the ledger callback;
- the webhook URL is a :class:`~rollout.models.Secret`, revealed only inside the sending
  thread. It never reaches an event, the ledger, an exception or the terminal: error text from
  ``urllib`` is scrubbed of the URL and of its distinctive parts before it is recorded.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.error
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from .clock import SYSTEM, Clock
from .events import Emit, Event, Kind
from .models import NotifyConfig, Secret, WebhookConfig
from .notification import SAMPLE, TEMPLATES, Notification, render_notification

__all__ = [
    "Delivery",
    "HttpReply",
    "LedgerRecorder",
    "Notification",
    "Notifier",
    "NotifyOutcome",
    "Poster",
    "post_json",
    "render_notification",
    "scrub",
]

MASK = "********"
#: Bytes of a webhook's answer kept for an error message.
REPLY_BYTES = 512
#: Path segments and query values at least this long are scrubbed on their own as well.
MIN_FRAGMENT = 6



class Delivery(Enum):
    SENT = "sent"  # the webhook answered 2xx
    FAILED = "failed"  # another status, or the request failed (refused, DNS, TLS)
    TIMED_OUT = "timed_out"  # no answer within the timeout; the caller went on
    NOT_CONFIGURED = "not_configured"  # no usable URL: recorded in the ledger only
    NOT_SUBSCRIBED = "not_subscribed"  # the kind is not in notify.events: nothing recorded


@dataclass(frozen=True)
class NotifyOutcome:
    delivery: Delivery
    http_status: int | None = None
    error: str | None = None  # scrubbed: never contains the URL
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.delivery is Delivery.SENT


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: str


#: POSTs ``body`` (JSON) to a URL within a timeout in seconds; raises on transport failure.
Poster = Callable[[str, bytes, float], HttpReply]
#: Journals one record: (ledger event kind, data), e.g. ``ledger.event(run_id, kind, data)``.
LedgerRecorder = Callable[[str, Mapping[str, object]], object]


def post_json(
    url: str, body: bytes, timeout: float, *, proxies: Mapping[str, str] | None = None
) -> HttpReply:
    """POST ``body`` as JSON with urllib; ``proxies`` None means the environment's proxies."""
    import urllib.request  # lazy: it pulls in http.client and ssl, ~40 ms a command

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        """A webhook that redirects is misconfigured; following it could post elsewhere."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if proxies is not None:
        handlers.append(urllib.request.ProxyHandler(dict(proxies)))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "rollout"},
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            text = response.read(REPLY_BYTES).decode("utf-8", "replace")
            return HttpReply(int(response.status), text)
    except urllib.error.HTTPError as exc:
        text = ""
        with contextlib.suppress(Exception):  # the status is the news; the body is a bonus
            text = exc.read(REPLY_BYTES).decode("utf-8", "replace")
        with contextlib.suppress(Exception):
            exc.close()
        return HttpReply(exc.code, text)


def scrub(text: str, secret: Secret | None) -> str:
    """``text`` with the secret URL, and each distinctive part of it, replaced by ``********``."""
    if secret is None or not secret:
        return text
    for fragment in _fragments(secret.reveal()):
        text = text.replace(fragment, MASK)
    return text


def _fragments(url: str) -> list[str]:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # not a URL at all: only the whole text can be masked
        return [url]
    pieces = {url, url.split("://", 1)[-1], parts.path, parts.query, parts.fragment}
    pieces.add(parts.path + ("?" + parts.query if parts.query else ""))
    if "@" in parts.netloc:  # user:password@host
        pieces.update({parts.netloc, parts.netloc.rsplit("@", 1)[0]})
        pieces.update({parts.username or "", parts.password or ""})
    pieces.update(parts.path.split("/"))
    for _, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        pieces.add(value)
    out: set[str] = set()
    for piece in pieces:
        if piece != url and len(piece) < MIN_FRAGMENT:
            continue
        for form in (piece, urllib.parse.unquote(piece), urllib.parse.quote(piece, safe="/")):
            out.update({form, repr(form)[1:-1]})
    return sorted((f for f in out if f), key=len, reverse=True)



# -- the notifier -----------------------------------------------------------------------------


class Notifier:
    """Sends notifications to the playbook's webhook and records every outcome.

    The constructor reads the URL from the environment variable or file (into a Secret) and
    renders a sample through the template, so a missing or broken template is a TemplateError
    before anything starts; after that, :meth:`send` never raises.
    """

    def __init__(
        self,
        config: NotifyConfig,
        emit: Emit,
        ledger_recorder: LedgerRecorder,
        *,
        environ: Mapping[str, str] | None = None,
        post: Poster = post_json,
        templates: Path = TEMPLATES,
        clock: Clock = SYSTEM,
    ) -> None:
        self.config = config
        self._emit = emit
        self._record = ledger_recorder
        self._post = post
        self._templates = templates
        self._clock = clock  # its monotonic time: how long a delivery took
        self._told = False
        self._url: Secret | None = None
        self._unset: tuple[Kind, str] | None = None
        webhook = config.webhook
        if webhook is None:
            self._unset = (Kind.INFO, "no webhook in the playbook's notify section")
        else:
            render_notification(SAMPLE, webhook.template, templates=templates)
            self._url, self._unset = _read_url(webhook, os.environ if environ is None else environ)

    @property
    def configured(self) -> bool:
        """Whether notifications are POSTed (a usable URL was found)."""
        return self._url is not None

    def send(self, notification: Notification) -> NotifyOutcome:
        """Deliver ``notification`` within the webhook timeout and record the outcome."""
        try:
            return self._send(notification)
        except Exception as exc:  # a notification must never fail the caller
            error = scrub(f"{type(exc).__name__}: {exc}", self._url)
            outcome = NotifyOutcome(Delivery.FAILED, error=error)
            self._note(notification, outcome)
            return outcome

    def _send(self, notification: Notification) -> NotifyOutcome:
        if notification.kind not in self.config.events:
            return NotifyOutcome(Delivery.NOT_SUBSCRIBED)
        if self._url is None or self.config.webhook is None:
            if not self._told and self._unset is not None:
                self._told = True
                kind, why = self._unset
                self._safe_emit(
                    Event(kind, f"{why}; notifications are recorded in the ledger only",
                          ts=self._clock.wall())  # fmt: skip
                )
            outcome = NotifyOutcome(Delivery.NOT_CONFIGURED)
        else:
            webhook = self.config.webhook
            body = render_notification(notification, webhook.template, templates=self._templates)
            outcome = self._deliver(self._url, body, webhook.timeout)
        self._note(notification, outcome)
        return outcome

    def _deliver(self, url: Secret, body: bytes, timeout: float) -> NotifyOutcome:
        """POST in a daemon thread; the caller waits at most ``timeout`` seconds for it."""
        started = self._clock.monotonic()
        box: list[NotifyOutcome] = []
        post = self._post

        def work() -> None:
            try:
                reply = post(url.reveal(), body, timeout)
            except BaseException as exc:  # the thread must not die printing a traceback
                if _is_timeout(exc):  # urllib's own deadline fired first: the same verdict
                    error = f"no answer within {timeout:g}s"
                    box.append(NotifyOutcome(Delivery.TIMED_OUT, error=error))
                else:
                    box.append(NotifyOutcome(Delivery.FAILED, error=scrub(_describe(exc), url)))
                return
            if 200 <= reply.status < 300:
                box.append(NotifyOutcome(Delivery.SENT, reply.status))
            else:
                said = " ".join(reply.body.split())[:200]
                error = scrub(f"HTTP {reply.status}" + (f": {said}" if said else ""), url)
                box.append(NotifyOutcome(Delivery.FAILED, reply.status, error))

        thread = threading.Thread(target=work, name="rollout-notify", daemon=True)
        thread.start()
        thread.join(timeout)
        elapsed = max(0.0, self._clock.monotonic() - started)
        if not box:  # still running: abandon it (a daemon; its own socket timeout ends it)
            error = f"no answer within {timeout:g}s"
            return NotifyOutcome(Delivery.TIMED_OUT, error=error, elapsed=elapsed)
        done = box[0]
        return NotifyOutcome(done.delivery, done.http_status, done.error, elapsed)

    def _note(self, notification: Notification, outcome: NotifyOutcome) -> None:
        data: dict[str, object] = {
            **notification.as_data(),
            "delivery": outcome.delivery.value,
            "http_status": outcome.http_status,
            "error": outcome.error,
            "elapsed": round(outcome.elapsed, 3),
        }
        what = notification.kind.value
        messages = {
            Delivery.SENT: f"notified {what} (HTTP {outcome.http_status})",
            Delivery.FAILED: f"notification {what} failed: {outcome.error}",
            Delivery.TIMED_OUT: f"notification {what} timed out: {outcome.error}; going on",
            Delivery.NOT_CONFIGURED: f"notification {what} recorded (no webhook)",
        }
        ok = None if outcome.delivery is Delivery.NOT_CONFIGURED else outcome.ok
        message = scrub(messages.get(outcome.delivery, what), self._url)
        self._safe_emit(Event(Kind.NOTIFY, message, ok=ok, data=data, ts=self._clock.wall()))
        try:
            self._record("notify", data)
        except Exception as exc:  # the journal's trouble is reported, not raised
            error = scrub(f"{type(exc).__name__}: {exc}", self._url)
            self._safe_emit(Event(Kind.WARNING, f"could not journal notification {what}: {error}",
                                  ts=self._clock.wall()))  # fmt: skip

    def _safe_emit(self, event: Event) -> None:
        with contextlib.suppress(Exception):  # an emitter's failure must not fail the caller
            self._emit(event)


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return isinstance(exc.reason, TimeoutError)
    return isinstance(exc, TimeoutError)


def _describe(exc: BaseException) -> str:
    """An error's type and message; URLError wraps the interesting part in ``reason``."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"{type(exc.reason).__name__}: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def _read_url(
    webhook: WebhookConfig, environ: Mapping[str, str]
) -> tuple[Secret | None, tuple[Kind, str] | None]:
    """The URL as a Secret, or None and why (never quoting the URL itself)."""
    if webhook.url_env is not None:
        where = f"${webhook.url_env}"
        raw = environ.get(webhook.url_env, "").strip()
        if not raw:
            return None, (Kind.INFO, f"no webhook URL: {where} is not set")
    else:
        where = f"the webhook URL file {webhook.url_file}"
        try:
            raw = Path(str(webhook.url_file)).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None, (Kind.INFO, f"no webhook URL: {where} does not exist")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            return None, (Kind.WARNING, f"cannot read {where}: {why}")
        if not raw:
            return None, (Kind.WARNING, f"{where} is empty")
    secret = Secret(raw)
    try:
        parts = urllib.parse.urlsplit(raw)
    except ValueError:
        return None, (Kind.WARNING, f"the URL in {where} cannot be parsed")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None, (Kind.WARNING, f"the URL in {where} is not an http(s) URL")
    if any(c.isspace() or not c.isprintable() for c in raw):
        return None, (Kind.WARNING, f"the URL in {where} contains spaces or control characters")
    return secret, None
