"""A phase's ``waves``: how much of the fleet takes the phase at a time, and each wave's soak.

Only the playbook's section (docs/playbook.md, "Waves"); walking a phase's waves is the
commands layer's :mod:`rollout.waves`. Sizes are cumulative: a host count or a share of the
fleet below 100%, each larger than the one before of its kind.
"""

from __future__ import annotations

from ..fields import show
from ..models import Wave, WaveSize
from ..yamlsrc import Node
from .reader import check_keys, count_or_share, fail, read_duration, read_mappings

__all__ = ["read_waves"]

_WAVE_KEYS = ("hosts", "soak")


def read_waves(node: Node, path: str) -> tuple[Wave, ...]:
    """``node["waves"]`` at ``path`` (``phases[N].waves``)."""
    hint = 'list waves like [{hosts: 1, soak: 10m}, {hosts: "25%", soak: 30m}]'
    out: list[Wave] = []
    last: dict[type, tuple[int, int]] = {}  # kind of size -> (previous value, its wave number)
    for index, wpath, item in read_mappings(node, "waves", path, hint=hint, item="wave",
                                            item_hint=hint):  # fmt: skip
        check_keys(item, _WAVE_KEYS, wpath, required=("hosts", "soak"))
        size = _wave_size(item, f"{wpath}.hosts")
        amount = int(size[:-1]) if isinstance(size, str) else size
        before = last.get(type(size))
        if before is not None and amount <= before[0]:
            fail(
                item.loc("hosts", f"{wpath}.hosts"),
                f"wave {index + 1} ({show(size)}) does not grow past wave {before[1]}",
                "wave sizes are cumulative (how much of the fleet has the phase once the wave "
                "is applied), so each must be larger than the one before",
            )
        last[type(size)] = (amount, index + 1)
        out.append(Wave(size, read_duration(item, "soak", f"{wpath}.soak", positive=False)))
    return tuple(out)


def _wave_size(node: Node, path: str) -> WaveSize:
    value = node["hosts"]
    size = count_or_share(value, 99)
    if size is None:
        fail(
            node.loc("hosts", path),
            f"bad wave size {show(value)}",
            'write a host count (1, 5) or a share of the fleet below 100% ("25%"); the hosts '
            "left after the last wave form the final wave, soaked for the phase's `soak`",
        )
    return size
