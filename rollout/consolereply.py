"""What a console call printed, read back: the result line, the reading, the failures.

Pure functions over a call's output (:class:`~rollout.transport.base.CommandResult`): the rpc
path's ``ROLLOUT-RESULT/1 {json}`` line (:func:`find_result`), a read's node name and flags
(:func:`flag_reading`), and the :class:`~rollout.errors.ConsoleError` each kind of failure
raises, with its hint (:func:`console_failure`, :func:`erl_failure`, :func:`garbage`,
:func:`state_failure`), and what a probe of the erl_call path concludes when erl_call ran
but did not answer (:func:`unreached`) or outlived its deadline (:func:`probe_timeout`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from .consolecode import MARKER, FlagReading
from .erlcall import UNAVAILABLE_STATUS, ConsolePath, PathChoice, Reply
from .errors import CommandTimeout, ConsoleError
from .flagvalues import from_node
from .fleetrecord import HostState
from .transport.base import CommandResult


def find_result(stdout: str) -> dict[str, object] | None:
    """The rpc path's result line, decoded; None when there is none or it is not an object."""
    for line in stdout.splitlines():
        if line.startswith(MARKER + " "):
            try:
                data = json.loads(line[len(MARKER) + 1 :])
            except json.JSONDecodeError:
                return None
            return data if isinstance(data, dict) else None
    return None


def flag_reading(
    host: str,
    allow: tuple[str, ...],
    data: Mapping[str, object],
    fleet: HostState | None,
    choice: PathChoice | None,
) -> FlagReading:
    """A read's node name (base64) and flags, exactly the playbook's ``allow``."""
    node = data.get("node")
    flags = data.get("flags")
    if not isinstance(node, str) or not isinstance(flags, dict):
        raise garbage(host, "the result has no node or flags")
    if set(flags) != set(allow):
        raise garbage(host, "the result does not list exactly the playbook's flags")
    try:
        node_name = base64.b64decode(node, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise garbage(host, "the node name is not base64") from None
    choice = choice or PathChoice(ConsolePath.RPC)
    return FlagReading(
        host,
        node_name,
        {k: from_node(v) for k, v in flags.items()},
        fleet,
        choice.path.value,
        choice.fallback,
    )


def console_failure(host: str, release_bin: str, result: CommandResult) -> ConsoleError:
    """The rpc path failed: its exit and output, and what to check."""
    tail = result.tail()
    hint = "check that the node runs and that release_bin and release_env are right"
    if result.exit_status == 127:
        hint = f"release_bin {release_bin} was not found on the host"
    elif "nodedown" in tail or "could not connect" in tail.lower():
        hint = "the node is down or the cookie is wrong: start the release, then re-run"
    return ConsoleError(
        host, f"remote console failed (exit {result.exit_status}): {tail}", hint=hint
    )


def erl_failure(host: str, result: CommandResult, why: str) -> ConsoleError:
    """The erl_call path failed: why, and what to check."""
    hint = "check that the node runs and that release_bin and release_env are right"
    if result.exit_status == UNAVAILABLE_STATUS:
        why = result.stderr.strip().removeprefix("rollout: ") or why
        hint = (
            "this host's release cannot be reached through erl_call: set "
            "rollout_console: auto (or rpc) for it in the inventory"
        )
    elif result.exit_status == 1 and "connect" in why:
        hint = "the node is down or the cookie is wrong: start the release, then re-run"
    elif "reported an error" in why:
        hint = "the release may not implement Foundation.FeatureFlags as expected"
    return ConsoleError(host, f"remote console (erl_call) failed: {why}", hint=hint)


def garbage(host: str, why: str) -> ConsoleError:
    """The console answered, but not in the expected shape."""
    return ConsoleError(
        host,
        f"unexpected console output: {why}",
        hint="the release may not implement Foundation.FeatureFlags as expected",
    )


def state_failure(host: str, error: str) -> ConsoleError:
    """The fleet state directory failed on the host (the state script's ``error`` line)."""
    return ConsoleError(
        host,
        f"the fleet state directory failed: {error}",
        hint="check rollout_state_dir in the inventory: the SSH user must be able to "
        "write it, and flock(1) must be installed on the host",
    )


def unreached(result: CommandResult, reply: Reply) -> PathChoice:
    """rpc for this call: erl_call ran but did not answer (the node is down, the cookie or
    the name is wrong)."""
    why = "erl_call did not reach the node: " + (reply.why or result.tail())
    if result.stderr.strip():
        why += f" ({result.tail(2)})"
    return PathChoice(ConsolePath.RPC, why[:300])


def probe_timeout(host: str, deadline: float) -> CommandTimeout:
    """erl_call outlived the probe's deadline: the call's timeout (rpc would wait as long)."""
    return CommandTimeout(
        host, f"the node did not answer erl_call within {deadline:.0f}s; nothing was run"
    )
