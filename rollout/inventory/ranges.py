"""Host entries: a name, an Ansible range (``web[01:10]``, ``db-[a:c]``) and an optional
``:port``.
"""

from __future__ import annotations

import re
import string

from ..errors import SourceLocation
from .builder import fail

# Checked with fullmatch(): "$" alone would accept a trailing newline.
HOST_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_RANGE_HOSTS = 10_000


def _split_port(token: str, loc: SourceLocation) -> tuple[str, int | None]:
    """``web1:2222`` -> ("web1", 2222); colons inside ``[...]`` ranges do not count."""
    depth, cut = 0, -1
    for i, ch in enumerate(token):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == ":" and depth == 0:
            cut = i
    if cut < 0:
        return token, None
    port = token[cut + 1 :]
    if not port.isdigit():
        fail(
            f"host {token!r}: expected a port number after ':', got {port!r}",
            loc,
            "write name:port (web1:2222) or set ansible_port",
        )
    return token[:cut], int(port)


def _expand_ranges(name: str, loc: SourceLocation) -> list[str]:
    """Expand Ansible host ranges: ``web[01:03]`` -> web01 web02 web03; ``db-[a:c]``."""
    start = name.find("[")
    if start < 0:
        return [name]
    end = name.find("]", start)
    if end < 0:
        fail(f"host range in {name!r} has no closing ']'", loc, "write it like web[01:10]")
    head, spec, tail = name[:start], name[start + 1 : end], name[end + 1 :]
    bounds = spec.split(":")
    hint = "write a range as [01:10], [a:f] or [1:10:2] (begin:end[:step])"
    if len(bounds) not in (2, 3) or not bounds[1]:
        fail(f"host range [{spec}] in {name!r} must be begin:end or begin:end:step", loc, hint)
    beg, stop = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not step_text.isdigit() or int(step_text) < 1:
        fail(f"host range [{spec}] in {name!r}: step must be a positive integer", loc, hint)
    step = int(step_text)
    letters = string.ascii_letters
    seq: list[str]
    if len(beg) == 1 and len(stop) == 1 and beg in letters and stop in letters:
        if letters.index(beg) > letters.index(stop):
            fail(f"host range [{spec}] in {name!r}: begin is after end", loc, hint)
        seq = list(letters[letters.index(beg) : letters.index(stop) + 1 : step])
    elif beg.isdigit() and stop.isdigit():
        if max(len(beg), len(stop)) > 9:
            fail(f"host range [{spec}] in {name!r} is too large", loc, hint)
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        if width and len(stop) != width:
            fail(
                f"host range [{spec}] in {name!r}: zero-padded begin and end need equal length",
                loc,
                hint,
            )
        if int(beg) > int(stop):
            fail(f"host range [{spec}] in {name!r}: begin is after end", loc, hint)
        if (int(stop) - int(beg)) // step >= _MAX_RANGE_HOSTS:
            fail(f"host range [{spec}] in {name!r} is too large", loc, hint)
        seq = [str(n).zfill(width) for n in range(int(beg), int(stop) + 1, step)]
    else:
        fail(f"host range [{spec}] in {name!r} must be two numbers or two letters", loc, hint)
    tails = _expand_ranges(tail, loc)
    if len(seq) * len(tails) > _MAX_RANGE_HOSTS:
        fail(f"host ranges in {name!r} expand to too many hosts", loc, hint)
    return [head + s + t for s in seq for t in tails]


def host_names(token: str, loc: SourceLocation) -> tuple[list[str], int | None]:
    """A host entry (name, range, optional ``:port``) -> validated names and the port."""
    if not token:
        fail("empty host name", loc, "give every host a name")
    base, port = _split_port(token, loc)
    names = _expand_ranges(base, loc)
    for name in names:
        if not HOST_NAME_RE.fullmatch(name):
            hint = "use letters, digits, '.', '_' and '-', starting with a letter or digit"
            if "=" in name:
                hint = "variables for a group go in a [group:vars] section"
            fail(f"host name {name!r} is not allowed", loc, hint)
    return names, port
