"""Reading one playbook mapping: typed values, known keys, and ``file:line (key)`` failures.

Every section module reads its part of the document through these helpers, so every mistake
is a :class:`~rollout.errors.PlaybookError` worded the same way: ``fail`` at the value's
location (``node.loc(key, path)``, where ``path`` is the key path, e.g. ``phases[3].soak``),
``check_keys`` for unknown keys (with a did-you-mean) and missing ones, and ``read_*`` for one
value of one type (text, a bool, a whole number, a number, a duration, a mapping, one of an
enum's values, a non-empty list of mappings).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from ..errors import InputError, PlaybookError, SourceLocation
from ..fields import is_control, is_number, is_whole, show
from ..yamlsrc import Node, NodeList, parse_duration

__all__ = [
    "PERCENT_RE",
    "as_playbook_error",
    "check_keys",
    "count_or_share",
    "did_you_mean",
    "fail",
    "kind_of",
    "read_bool",
    "read_choice",
    "read_duration",
    "read_int",
    "read_mapping",
    "read_mappings",
    "read_number",
    "read_text",
    "resolve",
    "seg",
]

#: A whole percentage as written in the file: ``"25%"``.
PERCENT_RE = re.compile(r"(\d{1,3})%")

E = TypeVar("E", bound=Enum)


def fail(location: SourceLocation, message: str, hint: str) -> NoReturn:
    raise PlaybookError(message, location=location, hint=hint)


def as_playbook_error(exc: InputError, hint: str | None = None) -> PlaybookError:
    """Re-raise a yamlsrc :class:`InputError` as a PlaybookError with the same location."""
    message = exc.message
    prefix = f"{exc.location}: " if exc.location else ""
    if prefix and message.startswith(prefix):
        message = message[len(prefix) :]
    default = "fix the YAML at that line"
    if "constructor for the tag" in message:
        default = "tags such as !!python/... are refused: write plain YAML values"
    return PlaybookError(message, location=exc.location, hint=hint or exc.hint or default)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """``"did you mean `x`? "`` for the closest of ``choices``, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean `{close[0]}`? " if close else ""


def check_keys(
    node: Node,
    allowed: Sequence[str],
    path: str,
    *,
    required: Sequence[str] = (),
    hint: str | None = None,
) -> None:
    for key in node:
        if key not in allowed:
            guess = did_you_mean(key, allowed).rstrip()
            fail(
                node.loc(key, _join(path, seg(key))),
                f"unknown key {show(key)}",
                guess or hint or f"allowed here: {', '.join(allowed)}",
            )
    for key in required:
        if key not in node:
            fail(
                node.loc(None, _join(path, key)),
                f"missing required key `{key}`",
                f"add `{key}:`" + (f" to {path}" if path else " at the top level"),
            )


# -- one value ------------------------------------------------------------------------------


def _typed(node: Node, key: str, path: str, ok: bool, what: str, hint: str) -> Any:
    """``node[key]`` when ``ok``, else "`key` must be <what>, not <the value>" at its line."""
    value = node[key]
    if not ok:
        fail(node.loc(key, path), f"`{key}` must be {what}, not {show(value)}", hint)
    return value


def read_mapping(node: Node, key: str, path: str) -> Node:
    hint = "write it as `key: value` lines indented under it, or {key: value}"
    value: Node = _typed(node, key, path, isinstance(node[key], Node), "a mapping", hint)
    return value


def read_text(
    node: Node, key: str, path: str, *, max_len: int, lines: bool = False, empty: bool = False
) -> str:
    value = node[key]
    loc = node.loc(key, path)
    if not isinstance(value, str):
        fail(loc, f"`{key}` must be text, not {show(value)}", "quote it if it is meant as text")
    if not value.strip() and not empty:
        fail(loc, f"`{key}` is empty", "write something, or leave the key out where optional")
    if len(value) > max_len:
        fail(loc, f"`{key}` is {len(value)} characters long", f"keep it to {max_len} or fewer")
    bad = next((c for c in value if is_control(c) and not (lines and c == "\n")), None)
    if bad is not None:
        what = "a line break" if bad in "\r\n\u2028\u2029" else f"control character {bad!r}"
        fail(loc, f"`{key}` contains {what}", "write it on one line of plain text")
    return value


def read_bool(node: Node, key: str, path: str) -> bool:
    ok = isinstance(node[key], bool)
    value: bool = _typed(node, key, path, ok, "true or false", "write true or false without quotes")
    return value


def read_int(node: Node, key: str, path: str, *, low: int) -> int:
    what = "a positive whole number" if low == 1 else f"a whole number >= {low}"
    ok = is_whole(node[key], low)
    value: int = _typed(node, key, path, ok, what, f"write {what} without quotes")
    return value


def read_number(node: Node, key: str, path: str) -> float:
    hint = "write a number without quotes or units, e.g. 5.0"
    return float(_typed(node, key, path, is_number(node[key]), "a number", hint))


def read_duration(node: Node, key: str, path: str, *, positive: bool) -> float:
    loc = node.loc(key, path)
    try:
        seconds = parse_duration(node[key], loc)
    except InputError as exc:
        raise as_playbook_error(
            exc, "write a number with a unit: 500ms, 30s, 30m, 2h, 1d"
        ) from None
    if not math.isfinite(seconds):
        fail(loc, f"`{key}` is not a finite duration", "write e.g. 30s, 30m, 2h or 24h")
    if positive and seconds <= 0:
        fail(loc, f"`{key}` must be longer than zero", "write e.g. 10s or 1m")
    return seconds


def read_choice(
    node: Node,
    key: str,
    path: str,
    enum: type[E],
    *,
    what: str,
    hint: str,
    max_len: int = 16,
    suggest: bool = False,
    missing: str | None = None,
) -> E:
    """``node[key]`` (text at ``path.key``) as one of ``enum``'s values, else "unknown <what>
    ..." with ``hint`` (after a did-you-mean when ``suggest``). With ``missing``, an absent
    key fails at ``path`` with that message and the values to use."""
    kpath = f"{path}.{key}"
    if missing is not None and key not in node:
        fail(node.loc(None, path), missing, f"use one of: {', '.join(e.value for e in enum)}")
    text = read_text(node, key, kpath, max_len=max_len)
    try:
        return enum(text)
    except ValueError:
        guess = did_you_mean(text, [e.value for e in enum]) if suggest else ""
        fail(node.loc(key, kpath), f"unknown {what} {show(text)}", guess + hint)


def read_mappings(
    node: Node, key: str, path: str, *, hint: str, item: str, item_hint: str, of: str = ""
) -> Iterator[tuple[int, str, Node]]:
    """``node[key]``, a non-empty list of mappings: each entry with its index and key path
    (``path[N]``, counting from 1), checked as it is reached, so that an earlier entry's
    mistake is reported before a later one's."""
    items = node[key]
    if not isinstance(items, NodeList) or not items:
        of_what = f" of {of}" if of else ""
        fail(node.loc(key, path), f"`{key}` must be a non-empty list{of_what}", hint)
    for index, entry in enumerate(items):
        epath = f"{path}[{index + 1}]"
        if not isinstance(entry, Node):
            fail(items.loc(index, epath), f"a {item} must be a mapping, not a {kind_of(entry)}",
                 item_hint)  # fmt: skip
        yield index, epath, entry


def count_or_share(value: object, most: int) -> int | str | None:
    """A host count (a whole number >= 1) or a share of the fleet (``"N%"``, N in
    1..``most``, written back without leading zeros); None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    match = PERCENT_RE.fullmatch(value) if isinstance(value, str) else None
    if match and 1 <= int(match.group(1)) <= most:
        return f"{int(match.group(1))}%"
    return None


def resolve(text: str, base_dir: Path | None) -> str:
    """A path from the playbook, relative to the playbook's directory (when it has one)."""
    if base_dir is not None and not Path(text).is_absolute():
        return str(base_dir / text)
    return text


# -- key paths ------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def seg(key: str) -> str:
    """A key as it may appear in an error's key path: plain, or quoted and cut short."""
    if re.fullmatch(r"[A-Za-z0-9_%-]{1,64}", key):
        return key
    return show(key)


def kind_of(value: object) -> str:
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return type(value).__name__
