"""Metrics sources: where health samples come from.

* ``console`` (default): ``Foundation.Deployment.Monitor.get_deployment_health/0`` through the
  remote console on every host; the same call returns the host's flags (drift check for free).
* ``command``: a command on every host that prints one JSON object of metric -> number.
* ``prometheus``: the Prometheus HTTP query API; one instant query per metric, the worst
  series decides. The base URL comes from an env variable or a file (it may carry a token).

Every source returns one :class:`~rollout.monitor.HostSample` per host (or per source), and
never raises for a sample it could not take: that is a gap, judged inconclusive.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .backend import Backend
from .consolecode import FlagReading
from .errors import HostError, UsageError
from .fleet import run_parallel
from .models import Direction, MetricsSource, Observed, Secret, SourceKind, Threshold
from .monitor import HostSample


@dataclass(frozen=True)
class Round:
    """One poll's raw material: a sample per source, and the flags read from each host."""

    samples: tuple[HostSample, ...]
    flags: Mapping[str, Mapping[str, Observed] | None]  # host -> flags, None if unreadable


def take_round(
    source: MetricsSource,
    backend: Backend,
    hosts: Sequence[str],
    thresholds: Sequence[Threshold],
    *,
    base_dir: Path,
    metrics: Sequence[str] = (),
) -> Round:
    """Take one round of samples from ``source`` and read every host's flags; ``metrics``
    names metrics a command source must report besides the thresholds' (compared ones)."""
    if source.kind is SourceKind.CONSOLE:
        outcomes = run_parallel(list(hosts), lambda n: backend.console(n).health())
        samples = []
        flags: dict[str, Mapping[str, Observed] | None] = {}
        for name in hosts:
            outcome = outcomes[name]
            if outcome.error is not None or outcome.value is None:
                _reset_if_broken(backend, name, outcome.error)
                samples.append(HostSample(name, error=_why(outcome.error)))
                flags[name] = None
            else:
                health = outcome.value
                samples.append(HostSample(name, dict(health.metrics), dict(health.raw)))
                flags[name] = health.reading.flags
        return Round(tuple(samples), flags)
    flags = _read_flags(backend, hosts)
    if source.kind is SourceKind.COMMAND:
        return Round(_command_samples(source, backend, hosts, thresholds, metrics), flags)
    return Round((_prometheus_sample(source, thresholds, base_dir),), flags)


def _why(error: HostError | None) -> str:
    return error.detail if error is not None else "no sample"


def _reset_if_broken(backend: Backend, name: str, error: HostError | None) -> None:
    from .errors import CommandTimeout, TransportError

    if isinstance(error, (TransportError, CommandTimeout)):
        backend.reset(name)


def _read_flags(backend: Backend, hosts: Sequence[str]) -> dict[str, Mapping[str, Observed] | None]:
    outcomes = run_parallel(list(hosts), lambda n: backend.console(n).read_flags())
    out: dict[str, Mapping[str, Observed] | None] = {}
    for name in hosts:
        value: FlagReading | None = outcomes[name].value
        _reset_if_broken(backend, name, outcomes[name].error)
        out[name] = value.flags if value is not None else None
    return out


def parse_metrics_json(
    text: str, metrics: Sequence[str]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Parse a command's JSON object; anything not a finite number becomes None."""
    data = json.loads(text.strip().splitlines()[-1]) if text.strip() else None
    if not isinstance(data, dict):
        raise ValueError("the command did not print a JSON object")
    values: dict[str, float | None] = {}
    raw: dict[str, str] = {}
    for name in metrics:
        if name not in data:
            continue
        value = data[name]
        raw[name] = json.dumps(value)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        values[name] = float(value) if number and math.isfinite(float(value)) else None
    return values, raw


def _command_samples(
    source: MetricsSource,
    backend: Backend,
    hosts: Sequence[str],
    thresholds: Sequence[Threshold],
    extra: Sequence[str] = (),
) -> tuple[HostSample, ...]:
    assert source.command is not None
    argv = shlex.split(source.command)
    metrics = [t.metric for t in thresholds]
    metrics += [m for m in extra if m not in metrics]

    def one(name: str) -> HostSample:
        result = backend.run(name, argv, timeout=source.timeout)
        if not result.ok:
            return HostSample(
                name, error=f"metrics command exited {result.exit_status}: {result.tail(2)}"
            )
        try:
            values, raw = parse_metrics_json(result.stdout, metrics)
        except ValueError as exc:
            return HostSample(name, error=f"metrics command output: {exc}")
        return HostSample(name, values, raw)

    outcomes = run_parallel(list(hosts), one)
    return tuple(
        o.value if o.value is not None else HostSample(o.host, error=_why(o.error))
        for o in (outcomes[n] for n in hosts)
    )


def prometheus_url(source: MetricsSource, base_dir: Path) -> Secret:
    """The Prometheus base URL, from the env variable or file the playbook names."""
    if source.url_env:
        value = os.environ.get(source.url_env, "").strip()
        if not value:
            raise UsageError(f"environment variable {source.url_env} (Prometheus URL) is not set")
        return Secret(value)
    if source.url_file:
        path = Path(source.url_file)
        path = path if path.is_absolute() else base_dir / path
        try:
            return Secret(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise UsageError(
                f"cannot read the Prometheus URL file {path}: {exc.strerror}"
            ) from None
    raise UsageError("the prometheus source needs url_env or url_file")


def _prometheus_sample(
    source: MetricsSource, thresholds: Sequence[Threshold], base_dir: Path
) -> HostSample:
    name = "prometheus"
    try:
        url = prometheus_url(source, base_dir)
    except UsageError as exc:
        return HostSample(name, error=exc.message)
    queries = dict(source.queries)
    values: dict[str, float | None] = {}
    raw: dict[str, str] = {}
    for threshold in thresholds:
        query = queries.get(threshold.metric)
        if query is None:
            continue
        try:
            series = _query(url, query, source.timeout)
        except (OSError, ValueError) as exc:
            reason = str(exc).replace(url.reveal(), str(url))
            return HostSample(
                name, error=f"prometheus query for {threshold.metric} failed: {reason}"
            )
        raw[threshold.metric] = json.dumps(series)
        finite = [v for v in series if math.isfinite(v)]
        if not series or len(finite) != len(series):
            values[threshold.metric] = None
            continue
        pick = max if threshold.direction is Direction.MAX else min
        values[threshold.metric] = pick(finite)
    return HostSample(name, values, raw)


def _query(url: Secret, query: str, timeout: float) -> list[float]:
    """One instant query; the values of every series in the result vector."""
    full = url.reveal().rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": query})
    request = urllib.request.Request(full, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise ValueError(f"HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise ValueError(f"unreachable ({exc.reason})") from None
    if not isinstance(body, dict) or body.get("status") != "success":
        raise ValueError("the query did not succeed")
    data = body.get("data") or {}
    if data.get("resultType") == "scalar":
        return [float(data["result"][1])]
    if data.get("resultType") != "vector":
        raise ValueError(f"unexpected result type {data.get('resultType')!r}")
    return [float(item["value"][1]) for item in data.get("result", [])]
