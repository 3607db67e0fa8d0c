"""The lab: real OpenSSH servers in front of real Foundation releases, on 127.0.0.1.

``up`` builds the Elixir release in ``lab/foundation``, then gives each host ``hN`` its own
sshd (port ``base_port + N``, own host key, run as the unprivileged lab user) and its own
copy of the release (node ``foundation_hN@127.0.0.1``, own cookie). It writes a client key,
``known_hosts`` and an Ansible-style inventory (``inventory/lab.yml``) for the rollout to
use. ``down`` stops exactly what ``up`` started. The control functions drive one host
locally, for tests and fault scenarios::

    lab = up(hosts=3)
    set_metrics(lab.hosts[0], error_rate=7.5)
    restart_node(lab.hosts[1])
    down()
"""

from __future__ import annotations

from .control import (
    FLAGS,
    delete_metric,
    node_pid,
    read_flags,
    reset_host,
    reset_metrics,
    restart_node,
    rpc,
    set_delay,
    set_metric_series,
    set_metrics,
    signal_node,
    signal_sshd,
    sshd_pid,
    start_node,
    start_sshd,
    stop_node,
    stop_sshd,
)
from .errors import LabError
from .manager import default_inventory, default_root, down, load, status, up
from .model import HostStatus, Lab, LabHost

__all__ = [
    "FLAGS",
    "HostStatus",
    "Lab",
    "LabError",
    "LabHost",
    "default_inventory",
    "default_root",
    "delete_metric",
    "down",
    "load",
    "node_pid",
    "read_flags",
    "reset_host",
    "reset_metrics",
    "restart_node",
    "rpc",
    "set_delay",
    "set_metric_series",
    "set_metrics",
    "signal_node",
    "signal_sshd",
    "sshd_pid",
    "start_node",
    "start_sshd",
    "status",
    "stop_node",
    "stop_sshd",
    "up",
]
