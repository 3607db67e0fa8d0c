"""``phases``: phases 1..N in order, each resolved from its delta to its full flag state.

A phase lists the flags it changes (``set``); its state is the previous phase's state with
that delta applied, and must differ from it. A phase may also override the health policy and
the judgement scores, set its gates and split itself into waves.
"""

from __future__ import annotations

from ..models import FlagState, Gates, HealthPolicy, Phase, Risk, Scoring, Wave
from ..yamlsrc import Node
from .flags import read_delta
from .health import PHASE_HEALTH_KEYS, read_health, read_scoring
from .reader import (
    check_keys,
    fail,
    read_bool,
    read_choice,
    read_duration,
    read_int,
    read_mapping,
    read_mappings,
    read_text,
)
from .wave_sizes import read_waves

__all__ = ["read_phases"]

_PHASE_KEYS = (
    "phase", "name", "risk", "soak", "set", "validation", "health", "gates", "waves", "judgement",
)  # fmt: skip
_GATE_KEYS = ("backup", "checks", "approval")


def read_phases(
    data: Node,
    defaults: FlagState,
    health: HealthPolicy,
    queries: frozenset[str] | None,
    scoring: Scoring,
) -> tuple[Phase, ...]:
    """The document's ``phases``, over the ``flags`` defaults and the top-level health and
    judgement (``queries``: what the metrics source answers for, None for anything)."""
    seen: dict[int, int] = {}
    previous = defaults
    out: list[Phase] = []
    for index, path, item in read_mappings(
        data,
        "phases",
        "phases",
        hint="list phases 1..N, each with phase, name, risk, soak and set",
        item="phase",
        item_hint="each entry is a mapping with phase, name, risk, soak and set",
    ):
        check_keys(item, _PHASE_KEYS, path, required=("phase", "name", "risk", "soak", "set"))
        number = read_int(item, "phase", f"{path}.phase", low=1)
        if number in seen:
            fail(
                item.loc("phase", f"{path}.phase"),
                f"phase {number} appears twice (first at line {seen[number]})",
                "give each phase its own number",
            )
        if number != index + 1:
            fail(
                item.loc("phase", f"{path}.phase"),
                f"expected phase {index + 1} here, got phase {number}",
                "number phases 1..N in ascending order, without gaps",
            )
        seen[number] = item.key_lines["phase"]
        phase = _phase(item, path, number, previous, health, queries, scoring)
        out.append(phase)
        previous = phase.state
    return tuple(out)


def _phase(
    node: Node,
    path: str,
    number: int,
    previous: FlagState,
    health: HealthPolicy,
    queries: frozenset[str] | None,
    base_scoring: Scoring,
) -> Phase:
    name = read_text(node, "name", f"{path}.name", max_len=80)
    risks = ", ".join(r.value for r in Risk)
    risk = read_choice(node, "risk", path, Risk, what="risk", hint=f"use one of: {risks}")
    soak = read_duration(node, "soak", f"{path}.soak", positive=False)
    delta = read_delta(read_mapping(node, "set", f"{path}.set"), f"{path}.set", previous)
    state = previous.merged(delta.as_dict())
    if not state.changes_from(previous.as_dict()):
        fail(
            node.loc("set", f"{path}.set"),
            f"phase {number} changes nothing: every flag in `set` already has that value",
            f"change at least one flag relative to phase {number - 1}, or drop the phase",
        )
    validation = ""
    if "validation" in node:
        validation = read_text(node, "validation", f"{path}.validation", max_len=500)
    override: HealthPolicy | None = None
    if "health" in node:
        hnode = read_mapping(node, "health", f"{path}.health")
        check_keys(
            hnode,
            PHASE_HEALTH_KEYS,
            f"{path}.health",
            hint="the metrics source is set once, under the top-level `health`",
        )
        override = read_health(hnode, f"{path}.health", health, queries)
    gates = Gates()
    if "gates" in node:
        gnode = read_mapping(node, "gates", f"{path}.gates")
        check_keys(gnode, _GATE_KEYS, f"{path}.gates")
        values = {k: read_bool(gnode, k, f"{path}.gates.{k}") for k in gnode}
        gates = Gates(**values)
    waves: tuple[Wave, ...] = ()
    if "waves" in node:
        waves = read_waves(node, f"{path}.waves")
    scoring = None
    if "judgement" in node:
        scoring = read_scoring(node, "judgement", f"{path}.judgement", base_scoring)
    return Phase(
        number, name, risk, soak, delta, state, validation, override, gates, waves, scoring
    )
