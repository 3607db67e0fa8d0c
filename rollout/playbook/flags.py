"""The playbook's ``flags`` (every flag with its default) and a phase's ``set`` (its delta).

A flag's default is ``true`` or ``false`` (phase 0, the baseline); a phase sets flags that
``flags`` lists, each to ``true``, ``false`` or a whole percentage 1..100 (never 0: see
docs/playbook.md, "Values").
"""

from __future__ import annotations

from ..errors import SourceLocation
from ..fields import show
from ..models import FLAG_NAME_RE, FlagState, FlagValue
from ..yamlsrc import Node
from .reader import PERCENT_RE, did_you_mean, fail, seg

__all__ = ["read_delta", "read_flags"]

_ZERO_HINT = "use false: a percentage of 0 is truthy wherever the service calls enabled?/1"


def read_flags(node: Node) -> FlagState:
    """The ``flags`` mapping: the baseline every phase's delta applies over."""
    if not node:
        fail(node.loc(None, "flags"), "`flags` lists no flags", "list every flag with its default")
    for name, default in node.items():
        loc = node.loc(name, f"flags.{seg(name)}")
        if not FLAG_NAME_RE.fullmatch(name):
            fail(
                loc,
                f"flag name {show(name)} is not a plain identifier",
                "use lowercase letters, digits and '_', starting with a letter (at most 63)",
            )
        if not isinstance(default, bool):
            fail(
                loc,
                f"the default of `{name}` must be true or false, not {show(default)}",
                "defaults are phase 0, the baseline: write true or false",
            )
    return FlagState.of(dict(node))


def read_delta(node: Node, path: str, previous: FlagState) -> FlagState:
    """A phase's ``set`` at ``path``: only flags that ``previous`` knows, each a flag value."""
    known = previous.names()
    for flag, value in node.items():
        loc = node.loc(flag, f"{path}.{seg(flag)}")
        if flag not in known:
            fail(
                loc,
                f"flag {show(flag)} is not in `flags`",
                f"{did_you_mean(flag, known)}known flags: {', '.join(known)}",
            )
        _flag_value(value, loc)
    return FlagState.of(dict(node))


def _flag_value(value: object, loc: SourceLocation) -> FlagValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value == 0:
            fail(loc, "a percentage of 0 is refused", _ZERO_HINT)
        if not 1 <= value <= 100:
            fail(
                loc,
                f"percentage {value} is outside 1..100",
                "write true, false, or a whole percentage from 1 to 100",
            )
        return value
    if isinstance(value, float):
        hint = "percentages are whole numbers from 1 to 100, e.g. 10"
    elif isinstance(value, str) and PERCENT_RE.fullmatch(value.strip()):
        hint = f"write the number without quotes or '%': {value.strip()[:-1]}"
    elif isinstance(value, str):
        hint = "write true or false without quotes, or a whole percentage from 1 to 100"
    else:
        hint = "write true, false, or a whole percentage from 1 to 100"
    fail(loc, f"a flag value must be true, false or a percentage, not {show(value)}", hint)
