"""Ansible host patterns, as given to ``--limit``: pure matching, no I/O.

A pattern is a list of tokens separated by ``,`` or ``:``. Each token is ``all`` or ``*``, a
host name, a group name, a glob (``web*``), or a regex (``~web0[12]``), optionally with a
subscript (``web[0]``, ``web[-1]``, ``web[0:2]`` inclusive, ``web[1:]``). Plain tokens are a
union; ``&token`` intersects and ``!token`` excludes, applied after every plain token as Ansible
does; a pattern made only of ``&``/``!`` tokens starts from ``all``. The result is in inventory
order. A token that matches nothing is an error, never a silent no-op: an exclusion with a typo
would otherwise put the host it meant to spare in the run.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence

from .errors import InventoryError
from .models import Host, Inventory

__all__ = ["match_hosts", "select_hosts", "split_pattern"]

_SUBSCRIPT_RE = re.compile(r"^(.+)\[(?:(-?\d+)|(\d+):(\d*))\]$")
_GLOB_CHARS = (".", "?", "*", "[")


def split_pattern(pattern: str) -> tuple[str, ...]:
    """``"web:&prod,!web3"`` -> ("web", "&prod", "!web3"); separators inside ``[...]`` stay."""
    tokens: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in pattern:
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        elif ch in ",:" and depth == 0:
            tokens.append("".join(current))
            current = []
            continue
        current.append(ch)
    tokens.append("".join(current))
    return tuple(token.strip() for token in tokens if token.strip())


def match_hosts(
    pattern: str,
    hosts: Sequence[str],
    groups: Mapping[str, frozenset[str]],
    *,
    source: str = "the inventory",
) -> tuple[str, ...]:
    """The names in ``hosts`` (inventory order) that ``pattern`` selects; InventoryError if none."""
    listing = ", ".join(sorted(groups))
    tokens = split_pattern(pattern)
    if not tokens:
        raise InventoryError(
            f"host pattern {pattern!r} is empty",
            hint=f"give a host, a group ({listing}), a glob like 'web*', or 'all'",
        )
    plain = [t for t in tokens if t[0] not in "&!"]
    intersect = [t for t in tokens if t[0] == "&"]
    exclude = [t for t in tokens if t[0] == "!"]

    def match(token: str) -> list[str]:
        return _match_token(token, pattern, hosts, groups, source, listing)

    selected: set[str] = set()
    for token in plain or ["all"]:
        selected.update(match(token))
    for token in intersect:
        selected.intersection_update(match(token[1:]))
    for token in exclude:
        selected.difference_update(match(token[1:]))
    result = tuple(name for name in hosts if name in selected)
    if not result:
        raise InventoryError(
            f"host pattern {pattern!r} matches no host in {source}",
            hint=f"every host was intersected or excluded away; groups are: {listing}",
        )
    return result


def _match_token(
    token: str,
    pattern: str,
    hosts: Sequence[str],
    groups: Mapping[str, frozenset[str]],
    source: str,
    listing: str,
) -> list[str]:
    if not token:
        raise InventoryError(
            f"host pattern {pattern!r} has '&' or '!' with nothing after it",
            hint="write group:&other or group:!host",
        )
    if token in hosts:
        return [token]
    expr, subscript = _split_subscript(token)
    if expr.startswith("~"):
        try:
            regex = re.compile(expr[1:])
        except re.error as exc:
            raise InventoryError(
                f"host pattern {pattern!r}: {token!r} is not a valid regular expression: {exc}",
                hint="a regex token starts with '~' and cannot contain ',' or ':'",
            ) from None

        def matches(name: str) -> bool:
            return regex.match(name) is not None
    else:

        def matches(name: str) -> bool:
            return fnmatch.fnmatchcase(name, expr)

    wanted: set[str] = set()
    matched_groups = [g for g in groups if matches(g)]
    for group in matched_groups:
        wanted |= groups[group]
    if not matched_groups or expr.startswith("~") or any(c in expr for c in _GLOB_CHARS):
        wanted.update(name for name in hosts if matches(name))
    found = [name for name in hosts if name in wanted]
    if not found:
        raise InventoryError(
            f"host pattern {pattern!r}: {token!r} matches no host or group in {source}",
            hint=f"groups are: {listing}; check the spelling, or use a glob like 'web*'",
        )
    if subscript is None:
        return found
    start, end = subscript
    if end is None:
        if not -len(found) <= start < len(found):
            raise InventoryError(
                f"host pattern {pattern!r}: {token!r} is out of range; {expr!r} has "
                f"{len(found)} host(s)",
                hint=f"use an index from 0 to {len(found) - 1}",
            )
        return [found[start]]
    picked = found[start : (len(found) if end < 0 else end + 1)]
    if not picked:
        raise InventoryError(
            f"host pattern {pattern!r}: {token!r} selects no host; {expr!r} has "
            f"{len(found)} host(s)",
            hint="subscripts count from 0 and [a:b] includes both ends",
        )
    return picked


def _split_subscript(token: str) -> tuple[str, tuple[int, int | None] | None]:
    """``web[1]`` -> ("web", (1, None)); ``web[0:2]`` -> ("web", (0, 2)); ``web[1:]`` -> end -1."""
    if token.startswith("~"):
        return token, None
    m = _SUBSCRIPT_RE.match(token)
    if not m:
        return token, None
    expr, index, start, end = m.groups()
    if index is not None:
        return expr, (int(index), None)
    return expr, (int(start), int(end) if end else -1)


def select_hosts(inventory: Inventory, pattern: str | None) -> tuple[Host, ...]:
    """The hosts ``pattern`` selects, in inventory order; ``None`` or ``"all"``: every host."""
    if pattern is None:
        return inventory.hosts
    names = set(
        match_hosts(
            pattern,
            [host.name for host in inventory.hosts],
            inventory.groups,
            source=f"inventory {inventory.name!r}",
        )
    )
    return tuple(host for host in inventory.hosts if host.name in names)
