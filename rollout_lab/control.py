"""Driving one lab host from the test machine: its console, its node and its sshd.

Everything here runs locally as the lab user (never over SSH), for tests and fault
scenarios: read or set flags and metrics behind the rollout's back, stop, start, restart or
freeze a node or an sshd. Starting and stopping update ``state.json`` so that ``down`` still
stops exactly what runs.

Values sent to the console are encoded here (numbers, atoms from a fixed set, strings as
byte lists); metric names must be identifiers. Nothing a caller passes is pasted into code.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rollout.errors import CommandTimeout, ConsoleError
from rollout.models import FLAG_NAME_RE, METRIC_NAME_RE

from . import node, procs, sshd, state
from .account import LabUser
from .errors import LabError
from .model import LabHost
from .state import HostRecord

#: A value :func:`set_metrics` can inject: a number, ``None`` (nil), or a string (see there).
MetricValue = float | str | None

FLAGS = (
    "use_persistent_agents",
    "use_v2_coordinator",
    "use_new_error_handling",
    "use_sync_test_apis",
    "enforce_supervised_tasks",
    "use_reliable_messaging",
)

_ATOM_RE = re.compile(r"^:([a-z_][A-Za-z0-9_]*)$")
_SPECIAL_ATOMS = {"nan": ":nan", "inf": ":inf", "-inf": ':"-inf"'}
_INT_RE = re.compile(r"^-?\d+$")


def _user(host: LabHost) -> LabUser:
    """The lab user: whoever owns the host's directory."""
    try:
        uid = host.root.stat().st_uid
    except FileNotFoundError as exc:
        raise LabError(f"{host.name}: {host.root} is missing", hint="run `invoke lab.up`") from exc
    return LabUser.of_uid(uid)


def _need_release(host: LabHost) -> None:
    if not host.with_release:
        raise LabError(
            f"{host.name} is an SSH-only host with no node",
            hint="use a lab host brought up with a release",
        )


# -- console ---------------------------------------------------------------------------------


def rpc(host: LabHost, expr: str, timeout: float = 30) -> str:
    """Run ``bin/foundation rpc EXPR`` on ``host`` as the lab user and return its stdout.

    Raises :class:`~rollout.errors.ConsoleError` if it exits non-zero (a raise, a failed
    match, node down) and :class:`~rollout.errors.CommandTimeout` past ``timeout`` seconds.
    """
    _need_release(host)
    try:
        proc = node.rpc(host.paths, _user(host), expr, timeout)
    except subprocess.TimeoutExpired as exc:
        raise CommandTimeout(
            host.name,
            f"`bin/foundation rpc` did not answer within {timeout}s",
            hint="is the node frozen or overloaded? see `invoke lab.status`",
        ) from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise ConsoleError(
            host.name,
            f"`bin/foundation rpc` exited {proc.returncode}:\n{tail}",
            hint="check the expression, and that the node runs (`invoke lab.status`)",
        )
    return proc.stdout


def elixir_value(value: MetricValue) -> str:
    """``value`` as an Elixir literal.

    ``bool`` -> ``true``/``false``; ``None`` -> ``nil``; ints and finite floats as numbers;
    NaN and infinities, and the strings ``"nan"``, ``"inf"``, ``"-inf"``, -> the atoms
    ``:nan``, ``:inf``, ``:"-inf"``; a string ``":name"`` -> that atom; any other string -> an
    Elixir binary (as a byte list, so nothing in it is ever evaluated).
    """
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ":nan"
        if math.isinf(value):
            return ":inf" if value > 0 else ':"-inf"'
        text = repr(value).replace("e+", "e")
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{exponent}" if exponent else mantissa
    if value in _SPECIAL_ATOMS:
        return _SPECIAL_ATOMS[value]
    atom = _ATOM_RE.match(value)
    if atom:
        return f":{atom.group(1)}"
    return "<<" + ", ".join(str(b) for b in value.encode()) + ">>"


def _checked(name: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.match(name):
        raise LabError(f"{name!r} is not a valid {what} name", hint="use lower_snake_case")
    return name


# -- SSH-only hosts: the console stub reads its flags and metrics from files -----------------


def _stub_file(host: LabHost, name: str) -> Path:
    return host.paths.release / name


def _stub_metrics(host: LabHost) -> dict[str, str]:
    try:
        lines = _stub_file(host, "metrics.override").read_text().splitlines()
    except FileNotFoundError:
        return {}
    return dict(line.split(" ", 1) for line in lines if " " in line)


def _stub_number(value: MetricValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise LabError(
            f"an SSH-only host's stub reports only finite numbers or None, not {value!r}",
            hint="use a lab host with a release for NaN, atoms or strings",
        )
    return repr(float(value))


def _write_stub_metrics(host: LabHost, metrics: dict[str, str]) -> None:
    path = _stub_file(host, "metrics.override")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{k} {v}\n" for k, v in metrics.items()))
    tmp.chmod(0o644)
    tmp.replace(path)  # the stub reads it on every call: never half-written


def set_metrics(host: LabHost, **metrics: MetricValue) -> None:
    """Merge ``metrics`` into what ``get_deployment_health/0`` reports; see :func:`elixir_value`.

    On an SSH-only host the console stub's ``metrics.override`` file gets the values (finite
    numbers, or None for a missing one).
    """
    if not host.with_release:
        current = _stub_metrics(host)
        for k, v in metrics.items():
            current[_checked(k, METRIC_NAME_RE, "metric")] = _stub_number(v)
        _write_stub_metrics(host, current)
        return
    pairs = ", ".join(
        f"{_checked(k, METRIC_NAME_RE, 'metric')}: {elixir_value(v)}" for k, v in metrics.items()
    )
    rpc(host, f":ok = Foundation.Deployment.Monitor.put_metrics(%{{{pairs}}})")


def set_metric_series(host: LabHost, metric: str, level: float, noise: float) -> None:
    """Make ``metric`` read as ``level`` plus uniform noise in ``[-noise, noise]``, drawn afresh
    on every health read (a fleet's metrics are never constant)."""
    name = _checked(metric, METRIC_NAME_RE, "metric")
    if noise < 0 or not (math.isfinite(level) and math.isfinite(noise)):
        raise LabError(f"a series needs a finite level and noise >= 0, not {level}, {noise}")
    if not host.with_release:
        current = _stub_metrics(host)
        current[name] = f"{_stub_number(level)} {_stub_number(noise)}"
        _write_stub_metrics(host, current)
        return
    rpc(
        host,
        f":ok = Foundation.Deployment.Monitor.put_series(:{name}, "
        f"{elixir_value(float(level))}, {elixir_value(float(noise))})",
    )


def delete_metric(host: LabHost, metric: str) -> None:
    """Remove ``metric`` from the health report."""
    name = _checked(metric, METRIC_NAME_RE, "metric")
    rpc(host, f":ok = Foundation.Deployment.Monitor.delete_metric(:{name})")


def reset_metrics(host: LabHost) -> None:
    """Put every metric back to its healthy default."""
    if not host.with_release:
        _stub_file(host, "metrics.override").unlink(missing_ok=True)
        return
    rpc(host, ":ok = Foundation.Deployment.Monitor.reset_metrics()")


def set_delay(host: LabHost, seconds: float) -> None:
    """Make ``get_deployment_health/0`` wait ``seconds`` before answering (0 clears)."""
    rpc(host, f":ok = Foundation.Deployment.Monitor.set_delay({max(0, round(seconds * 1000))})")


def reset_host(host: LabHost) -> None:
    """Every flag off, healthy metrics, no delay: the state of a freshly booted node.

    On an SSH-only host: the stub's flag file emptied (every flag back to its default, as a
    restart does) and its metric overrides removed.
    """
    if not host.with_release:
        reset_stub_flags(host)
        reset_metrics(host)
        return
    body = "; ".join(f":ok = Foundation.FeatureFlags.disable(:{f})" for f in FLAGS)
    rpc(
        host,
        body + "; :ok = Foundation.Deployment.Monitor.reset_metrics()"
        "; :ok = Foundation.Deployment.Monitor.set_delay(0)",
    )


_READ_FLAGS = (
    "for {k, v} <- Enum.sort(:ets.tab2list(:foundation_feature_flags)), "
    'do: IO.puts("#{k}=#{inspect(v)}")'
)


def reset_stub_flags(host: LabHost) -> None:
    """Empty an SSH-only host's flag file: every flag back to its default, like a restart."""
    path = _stub_file(host, "flags.state")
    if path.exists():
        path.write_text("")


def read_flags(host: LabHost) -> dict[str, bool | int]:
    """Every flag in the node's table with its stored value (``True``/``False``/percentage).

    On an SSH-only host: every flag the stub stores, with ``False`` for the ones never set (the
    stub's defaults), read from its flag file rather than through SSH.
    """
    if not host.with_release:
        try:
            lines = _stub_file(host, "flags.state").read_text().splitlines()
        except FileNotFoundError:
            lines = []
        pairs = [line.replace(" ", "=", 1) for line in lines]
        flags: dict[str, bool | int] = dict.fromkeys(FLAGS, False)
    else:
        pairs = rpc(host, _READ_FLAGS).splitlines()
        flags = {}
    for line in pairs:
        name, sep, raw = line.partition("=")
        if not sep:
            continue
        _checked(name, FLAG_NAME_RE, "flag")
        if raw in ("true", "false"):
            flags[name] = raw == "true"
        elif _INT_RE.match(raw):
            flags[name] = int(raw)
        else:
            raise ConsoleError(host.name, f"flag {name} holds {raw!r}, not a bool or integer")
    return flags


# -- processes -------------------------------------------------------------------------------


def _update(host: LabHost, change: Callable[[HostRecord], HostRecord]) -> None:
    """Apply ``change`` to the host's record in ``state.json`` (caller holds the lock)."""
    st = state.read(host.lab_root)
    record = st.host(host.name) if st else None
    if st is not None and record is not None:
        state.write(host.lab_root, st.with_host(change(record)))


def _record(host: LabHost) -> HostRecord | None:
    st = state.read(host.lab_root)
    return st.host(host.name) if st else None


def node_pid(host: LabHost) -> int | None:
    """The OS pid of the host's node, or None if it does not run."""
    if not host.with_release:
        return None
    record = _record(host)
    ref = node.running(host.paths, host.node, record.beam if record else None, _user(host))
    return ref.pid if ref else None


def sshd_pid(host: LabHost) -> int | None:
    """The pid of the host's sshd, or None if it does not run."""
    record = _record(host)
    ref = sshd.running(host.paths, record.sshd if record else None, _user(host))
    return ref.pid if ref else None


def stop_node(host: LabHost, timeout: float = 15.0) -> None:
    """Stop the host's node and wait until its pid is gone."""
    _need_release(host)
    user = _user(host)
    with state.locked(host.lab_root):
        record = _record(host)
        if not node.stop(host.paths, host.node, record.beam if record else None, user, timeout):
            raise LabError(f"{host.name}: the node would not stop", hint="kill it by pid")
        _update(host, lambda r: replace(r, beam=None))


def start_node(host: LabHost, deadline: float = 30.0) -> int:
    """Start the host's node (if it does not run) and wait until its console answers.

    Returns the node's OS pid.
    """
    _need_release(host)
    user = _user(host)
    with state.locked(host.lab_root):
        st = state.read(host.lab_root)
        if st is None:
            raise LabError(f"no lab at {host.lab_root}", hint="run `invoke lab.up`")
        record = st.host(host.name)
        ref = node.running(host.paths, host.node, record.beam if record else None, user)
        if ref is None:
            ref = node.start(host.paths, host.node, user, epmd_port=st.epmd_port, deadline=deadline)
        found = ref
        _update(host, lambda r: replace(r, beam=found))
        return ref.pid


def restart_node(host: LabHost, deadline: float = 30.0) -> int:
    """Stop the host's node, start it again, wait for its console; return the new pid."""
    stop_node(host)
    return start_node(host, deadline)


def stop_sshd(host: LabHost) -> None:
    """Stop the host's sshd (open sessions stay; new connections are refused)."""
    user = _user(host)
    with state.locked(host.lab_root):
        record = _record(host)
        ref = sshd.running(host.paths, record.sshd if record else None, user)
        if ref is not None and not procs.terminate(ref, 5.0):
            raise LabError(f"{host.name}: sshd pid {ref.pid} would not stop", hint="kill it")
        _update(host, lambda r: replace(r, sshd=None))


def start_sshd(host: LabHost) -> int:
    """Start the host's sshd (if it does not run) and wait until it accepts; return its pid."""
    user = _user(host)
    with state.locked(host.lab_root):
        record = _record(host)
        ref = sshd.running(host.paths, record.sshd if record else None, user)
        if ref is None:
            if not procs.port_free(host.port):
                raise LabError(
                    f"127.0.0.1:{host.port} is taken by another program",
                    hint="stop it (`ss -ltnp`) and try again",
                )
            ref = sshd.start(host.paths, host.port, user)
        found = ref
        _update(host, lambda r: replace(r, sshd=found))
        return ref.pid


def signal_node(host: LabHost, sig: int) -> None:
    """Send ``sig`` (e.g. ``signal.SIGSTOP``/``SIGCONT``) to the host's node."""
    _need_release(host)
    record = _record(host)
    node.signal_node(host.paths, host.node, record.beam if record else None, _user(host), sig)


def signal_sshd(host: LabHost, sig: int) -> None:
    """Send ``sig`` to the host's sshd listener."""
    record = _record(host)
    ref = sshd.running(host.paths, record.sshd if record else None, _user(host))
    if ref is None or not procs.send(ref, sig):
        raise LabError(f"{host.name}: sshd is not running", hint="start it with start_sshd")
