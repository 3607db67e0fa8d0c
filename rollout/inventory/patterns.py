"""Ansible host patterns, as given to ``--limit``: pure matching, no I/O.

Exactly ansible-core 2.19's ``InventoryManager`` rules (the differential suite
``tests/unit/test_ansible_diff.py`` compares them with the real thing):

* **Splitting.** A pattern with a ``,`` splits at commas only (``web:db,canary`` is the two
  tokens ``web:db`` and ``canary``). Without a comma, a pattern that reads as one host address
  (``db1``, ``web[01:03]``, ``h1:2222``, an IPv6 address) is one token; anything else splits at
  ``:`` and whitespace outside ``[...]``.
* **Tokens.** ``all``; a host name (a host wins over a group of the same name, but ``!x`` and
  ``&x`` match groups first); a group name (its hosts in Ansible's group order: its own hosts,
  then its children's, breadth first); a glob (``web*``, matched against group names and,
  for globs, host names too); a regex (``~web0[12]``, matched from the start of the name).
* **Subscripts** index the token's own host list, not the inventory: ``web[0]``, ``web[-1]``,
  ``web[0:2]`` (inclusive), ``web[1:]``; ``[x-y]`` is read as ``[x:y]``.
* **Operators.** Plain tokens are a union; then every ``&token`` intersects and every
  ``!token`` excludes, wherever they appear; a pattern of only ``&``/``!`` tokens starts
  from ``all``.

The selected hosts come back in inventory order (Ansible's order for ``--limit``). Unlike
Ansible, which only warns, a token that matches nothing is an error, and so is a subscript out
of range or a pattern that leaves no host: an exclusion with a typo would otherwise put the
host it meant to spare in the run.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Collection, Mapping, Sequence

from ..errors import InventoryError
from ..models import Host, Inventory

__all__ = ["match_hosts", "select_hosts", "split_pattern"]

_SUBSCRIPT_RE = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_GLOB_CHARS = (".", "?", "*", "[")
# Tokens of a pattern without commas: runs of anything but whitespace, ':' and brackets, or
# whole bracketed expressions.
_COLON_TOKEN_RE = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
# One host address: a hostname (labels of word characters and '-', '_', with [a:b] ranges)
# or IPv4 address, optionally followed by :port; or [anything]:port.
_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I)
_HOSTPORT_RE = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_BRACKETED_RE = re.compile(r"^\[(.+)\]:([0-9]+)$")


def _is_address(text: str) -> bool:
    """Ansible's ``parse_address(text, allow_ranges=True)`` succeeds (IPv6 ranges aside)."""
    for regex in (_BRACKETED_RE, _HOSTPORT_RE):
        m = regex.match(text)
        if m:
            text = m.group(1)
    if _HOSTNAME_RE.match(text):
        return True
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def split_pattern(pattern: str) -> tuple[str, ...]:
    """``"web,!web3"`` -> ("web", "!web3"); ``"web:&prod"`` -> ("web", "&prod"), as Ansible."""
    if "," in pattern:
        parts: Sequence[str] = pattern.split(",")
    elif _is_address(pattern.strip()):
        parts = [pattern]
    else:
        parts = _COLON_TOKEN_RE.findall(pattern)
    return tuple(token.strip() for token in parts if token.strip())


def _ordered(
    hosts: Sequence[str], groups: Mapping[str, Collection[str]]
) -> dict[str, Sequence[str]]:
    """Each group's hosts in its own order; a set (no order given) in inventory order."""
    out: dict[str, Sequence[str]] = {}
    for name, members in groups.items():
        if isinstance(members, (set, frozenset)):
            out[name] = [h for h in hosts if h in members]
        else:
            out[name] = list(members)
    return out


def match_hosts(
    pattern: str,
    hosts: Sequence[str],
    groups: Mapping[str, Collection[str]],
    *,
    source: str = "the inventory",
) -> tuple[str, ...]:
    """The names in ``hosts`` (inventory order) that ``pattern`` selects; InventoryError if none.

    ``groups`` maps every group (``all`` and ``ungrouped`` included, in the inventory's group
    order) to its hosts: a sequence in Ansible's group order, or a set (then inventory order).
    """
    listing = ", ".join(sorted(groups))
    tokens = split_pattern(pattern)
    if not tokens:
        raise InventoryError(
            f"host pattern {pattern!r} is empty",
            hint=f"give a host, a group ({listing}), a glob like 'web*', or 'all'",
        )
    ordered = _ordered(hosts, groups)
    if "all" not in ordered:
        ordered = {"all": list(hosts), **ordered}
    plain = [t for t in tokens if t[0] not in "&!"]
    intersect = [t for t in tokens if t[0] == "&"]
    exclude = [t for t in tokens if t[0] == "!"]
    known = set(hosts)

    def match(token: str) -> list[str]:
        return _match_token(token, pattern, hosts, ordered, source, listing)

    selected: set[str] = set()
    for token in plain or ["all"]:
        selected.update([token] if token in known else match(token))
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
    groups: Mapping[str, Sequence[str]],
    source: str,
    listing: str,
) -> list[str]:
    """Ansible's ``_match_one_pattern``: group matches, then host matches, then a subscript."""
    if not token:
        raise InventoryError(
            f"host pattern {pattern!r} has '&' or '!' with nothing after it",
            hint="write group:&other or group:!host",
        )
    expr, subscript = _split_subscript(token)
    if expr.startswith("~"):
        try:
            regex = re.compile(expr[1:])
        except re.error as exc:
            raise InventoryError(
                f"host pattern {pattern!r}: {token!r} is not a valid regular expression: {exc}",
                hint="a regex token starts with '~'; write several patterns with ',' between",
            ) from None
    else:
        regex = re.compile(fnmatch.translate(expr))
    found: list[str] = []  # duplicates kept, as Ansible's subscripts see them
    matched_groups = [g for g in groups if regex.match(g)]
    for group in matched_groups:
        found.extend(groups[group])
    if not matched_groups or expr.startswith("~") or any(c in expr for c in _GLOB_CHARS):
        found.extend(name for name in hosts if regex.match(name))
    if not found:
        raise InventoryError(
            f"host pattern {pattern!r}: {token!r} matches no host or group in {source}",
            hint=f"groups are: {listing}; check the spelling, or use a glob like 'web*'",
        )
    if subscript is None:
        return found
    start, end = subscript
    if end:  # Ansible's rule: [a:0] is read as [a]
        picked = found[start : (len(found) if end == -1 else end + 1)]
    elif -len(found) <= start < len(found):
        picked = [found[start]]
    else:
        raise InventoryError(
            f"host pattern {pattern!r}: {token!r} is out of range; {expr!r} has "
            f"{len(found)} host(s)",
            hint=f"use an index from 0 to {len(found) - 1}",
        )
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
    expr, index, start, _sep, end = m.groups()
    if index is not None:
        return expr, (int(index), None)
    return expr, (int(start), int(end) if end else -1)


def select_hosts(inventory: Inventory, pattern: str | None) -> tuple[Host, ...]:
    """The hosts ``pattern`` selects, in inventory order; ``None`` or ``"all"``: every host."""
    if pattern is None:
        return inventory.hosts
    groups: Mapping[str, Collection[str]] = inventory.group_order or inventory.groups
    names = set(
        match_hosts(
            pattern,
            [host.name for host in inventory.hosts],
            groups,
            source=f"inventory {inventory.name!r}",
        )
    )
    return tuple(host for host in inventory.hosts if host.name in names)
