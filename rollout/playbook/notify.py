"""``notify``: the webhook (where its URL comes from, its timeout, its template) and the
events it is sent for.

The template is rendered once with a sample notification while the playbook loads, so a
broken one is found then, not in the middle of a rollback. Sending is the engine's
:mod:`rollout.notify`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SourceLocation
from ..fields import show
from ..models import NotifyConfig, NotifyKind, WebhookConfig
from ..yamlsrc import Node, NodeList
from .reader import check_keys, did_you_mean, fail, read_duration, read_mapping, read_text
from .secret_urls import URL_FROM, read_url_source

__all__ = ["MAX_NOTIFY_TIMEOUT", "read_notify"]

_NOTIFY_KEYS = ("webhook", "events")
_WEBHOOK_KEYS = ("url_env", "url_file", "timeout", "template")
MAX_NOTIFY_TIMEOUT = 60.0


def read_notify(node: Node, base_dir: Path | None) -> NotifyConfig:
    """The ``notify`` mapping; without ``events``, every kind of event is sent."""
    check_keys(node, _NOTIFY_KEYS, "notify")
    webhook = None
    if "webhook" in node:
        webhook = _webhook(read_mapping(node, "webhook", "notify.webhook"), base_dir)
    events = frozenset(NotifyKind)
    if "events" in node:
        events = _notify_events(node)
    return NotifyConfig(webhook, events)


def _webhook(node: Node, base_dir: Path | None) -> WebhookConfig:
    path = "notify.webhook"
    if "url" in node:
        fail(
            node.loc("url", f"{path}.url"),
            "a literal `url` is refused: a webhook URL is a secret",
            f"anyone holding it can post to the channel; give {URL_FROM}",
        )
    check_keys(node, _WEBHOOK_KEYS, path)
    url_env, url_file = read_url_source(
        node, path, "a webhook", "the URL", "ROLLOUT_WEBHOOK_URL", base_dir
    )
    timeout = WebhookConfig.timeout
    if "timeout" in node:
        timeout = read_duration(node, "timeout", f"{path}.timeout", positive=True)
        if timeout > MAX_NOTIFY_TIMEOUT:
            fail(
                node.loc("timeout", f"{path}.timeout"),
                f"a webhook timeout of {timeout:g}s holds up the rollout",
                f"use at most {MAX_NOTIFY_TIMEOUT:g}s; 5s is plenty for a chat webhook",
            )
    template = WebhookConfig.template
    if "template" in node:
        template = read_text(node, "template", f"{path}.template", max_len=200)
        parts = template.split("/")
        if (
            template.startswith("/")
            or ".." in parts
            or "\\" in template
            or not template.endswith(".j2")
        ):
            fail(
                node.loc("template", f"{path}.template"),
                f"template {show(template)} is not a .j2 file under templates/",
                "name it relative to templates/, e.g. notify/slack.json.j2",
            )
    _check_template(template, node.loc("template" if "template" in node else None,
                                       f"{path}.template"))  # fmt: skip
    return WebhookConfig(url_env, url_file, timeout, template)


def _check_template(template: str, loc: SourceLocation) -> None:
    """A broken notification template is found when the playbook loads, not mid-rollback."""
    from ..errors import TemplateError
    from ..notification import check_template

    try:
        check_template(template)
    except TemplateError as exc:
        fail(loc, f"notification template {template} is broken: {exc.message}",
             exc.hint or "fix the template, then re-run")  # fmt: skip


def _notify_events(node: Node) -> frozenset[NotifyKind]:
    value = node["events"]
    names = [k.value for k in NotifyKind]
    if not isinstance(value, NodeList):
        fail(
            node.loc("events", "notify.events"),
            f"`events` must be a list, not {show(value)}",
            f"list any of: {', '.join(names)}",
        )
    out: set[NotifyKind] = set()
    for index, item in enumerate(value):
        loc = value.loc(index, f"notify.events[{index + 1}]")
        try:
            kind = NotifyKind(item)
        except ValueError:
            fail(
                loc,
                f"unknown event {show(item)}",
                did_you_mean(str(item), names) + f"events: {', '.join(names)}",
            )
        if kind in out:
            fail(loc, f"event `{kind.value}` is listed twice", "list each event once")
        out.add(kind)
    return frozenset(out)
