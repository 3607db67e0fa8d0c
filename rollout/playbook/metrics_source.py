"""``health.source``: where the health metrics come from (console, command or prometheus).

The source is set once, under the top-level ``health``; a prometheus source names the metrics
it can answer for (its ``queries``), and the thresholds may judge only those
(:func:`query_metrics`).
"""

from __future__ import annotations

from pathlib import Path

from ..fields import show
from ..models import METRIC_NAME_RE, MetricsSource, SourceKind
from ..yamlsrc import Node
from .reader import check_keys, fail, read_choice, read_duration, read_mapping, read_text, seg
from .secret_urls import read_url_source

__all__ = ["query_metrics", "read_metric_name", "read_source"]

_SOURCE_KEYS: dict[SourceKind, tuple[str, ...]] = {
    SourceKind.CONSOLE: ("kind", "timeout"),
    SourceKind.COMMAND: ("kind", "timeout", "command"),
    SourceKind.PROMETHEUS: ("kind", "timeout", "url_env", "url_file", "queries"),
}


def read_source(node: Node, base_dir: Path | None) -> MetricsSource:
    """The ``health.source`` mapping."""
    path = "health.source"
    kinds = ", ".join(k.value for k in SourceKind)
    if "url" in node:
        fail(
            node.loc("url", f"{path}.url"),
            "a literal `url` is refused: a URL may carry a secret",
            "put the URL in an environment variable (url_env: NAME) or a file (url_file: path)",
        )
    kind = read_choice(node, "kind", path, SourceKind, what="source kind",
                       hint=f"use one of: {kinds}", missing="`source` needs a `kind`")  # fmt: skip
    check_keys(
        node,
        _SOURCE_KEYS[kind],
        path,
        hint=f"kind {kind.value} takes: {', '.join(_SOURCE_KEYS[kind])}",
    )
    timeout = MetricsSource.timeout
    if "timeout" in node:
        timeout = read_duration(node, "timeout", f"{path}.timeout", positive=True)
    if kind is SourceKind.CONSOLE:
        return MetricsSource(kind, timeout=timeout)
    if kind is SourceKind.COMMAND:
        if "command" not in node:
            fail(
                node.loc(None, path),
                "a command source needs `command`",
                "give the command each host runs; it must print one JSON object of metrics",
            )
        command = read_text(node, "command", f"{path}.command", max_len=1000)
        return MetricsSource(kind, command=command, timeout=timeout)
    return _prometheus(node, path, timeout, base_dir)


def _prometheus(node: Node, path: str, timeout: float, base_dir: Path | None) -> MetricsSource:
    url_env, url_file = read_url_source(
        node, path, "a prometheus source", "the base URL", "PROMETHEUS_URL", base_dir
    )
    if "queries" not in node:
        fail(
            node.loc(None, path),
            "a prometheus source needs `queries`",
            "map each metric to a PromQL query, e.g. error_rate: 'sum(rate(...))'",
        )
    qnode = read_mapping(node, "queries", f"{path}.queries")
    if not qnode:
        fail(
            node.loc("queries", f"{path}.queries"),
            "`queries` is empty",
            "map each metric to a PromQL query",
        )
    queries: list[tuple[str, str]] = []
    for metric in qnode:
        read_metric_name(qnode, metric, f"{path}.queries")
        text = read_text(qnode, metric, f"{path}.queries.{metric}", max_len=2000)
        queries.append((metric, text))
    return MetricsSource(
        SourceKind.PROMETHEUS,
        url_env=url_env,
        url_file=url_file,
        queries=tuple(queries),
        timeout=timeout,
    )


def query_metrics(source: MetricsSource) -> frozenset[str] | None:
    """The metrics a source can answer for, or None when it reports whatever it has."""
    if source.kind is SourceKind.PROMETHEUS:
        return frozenset(metric for metric, _ in source.queries)
    return None


def read_metric_name(node: Node, metric: str, path: str) -> None:
    """``metric``, a key of ``node`` at ``path``, is a plain metric name."""
    if not METRIC_NAME_RE.fullmatch(metric):
        fail(
            node.loc(metric, f"{path}.{seg(metric)}"),
            f"metric name {show(metric)} is not a plain identifier",
            "use lowercase letters, digits and '_', starting with a letter",
        )
