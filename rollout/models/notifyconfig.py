"""Notifications: the playbook's ``notify:`` section (sent by :mod:`rollout.notify`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class NotifyKind(Enum):
    DEPLOY_START = "deploy.start"
    DEPLOY_FINISH = "deploy.finish"
    ROLLBACK_AUTO = "rollback.auto"
    ROLLBACK_MANUAL = "rollback.manual"
    ROLLBACK_EMERGENCY = "rollback.emergency"


@dataclass(frozen=True)
class WebhookConfig:
    """Where notifications are POSTed. The URL itself is a secret and never in the playbook."""

    url_env: str | None = None  # an environment variable holding the URL
    url_file: str | None = None  # a file holding the URL (resolved against the playbook)
    timeout: float = 5.0  # hard cap on each POST, connect included
    template: str = "notify/slack.json.j2"  # under templates/


@dataclass(frozen=True)
class NotifyConfig:
    webhook: WebhookConfig | None = None  # None: notifications go to the ledger only
    events: frozenset[NotifyKind] = frozenset(NotifyKind)
