"""A strict parser for the Erlang terms ``erl_call`` prints: the subset a reply may use.

Accepted: atoms (bare or quoted), integers, floats, strings (as ``str``), tuples, proper
lists and maps. Everything else (pids, refs, funs, ports, binaries, improper lists, trailing
text) is a :class:`TermError`, so an unexpected reply can never be mistaken for data::

    >>> parse("{ok, [{use_a, true}, {use_b, 10}]}")
    (Atom('ok'), [(Atom('use_a'), True), (Atom('use_b'), 10)])

``true`` and ``false`` come back as Python booleans; every other atom as :class:`Atom`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Nesting deeper than this is refused: a reply from a flag table is shallow.
MAX_DEPTH = 16
#: Longer replies are refused before parsing.
MAX_LENGTH = 64 * 1024

Term = object  # Atom | bool | int | float | str | tuple | list | dict


class TermError(ValueError):
    """The text is not one complete term of the accepted subset."""


@dataclass(frozen=True)
class Atom:
    name: str

    def __repr__(self) -> str:
        return f"Atom({self.name!r})"


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<float>-?\d+\.\d+(?:[eE][+-]?\d+)?)
  | (?P<int>-?\d+)
  | (?P<atom>[a-z][A-Za-z0-9_@]*)
  | (?P<qatom>'(?:[^'\\]|\\.)*')
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<punct>\#\{|=>|[{}\[\],])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "s": " "}


def parse(text: str) -> Term:
    """The one term in ``text`` (surrounding whitespace allowed); TermError otherwise."""
    if len(text) > MAX_LENGTH:
        raise TermError(f"reply longer than {MAX_LENGTH} characters")
    tokens = _tokenize(text)
    term, pos = _term(tokens, 0, 0)
    if pos != len(tokens):
        raise TermError(f"trailing text after the term: {tokens[pos][1]!r}")
    return term


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise TermError(f"unexpected {text[pos : pos + 20]!r} at offset {pos}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append((kind, match.group()))
        pos = match.end()
    if not tokens:
        raise TermError("empty reply")
    return tokens


def _unquote(quoted: str) -> str:
    body = quoted[1:-1]
    out = []
    i = 0
    while i < len(body):
        if body[i] == "\\":
            if i + 1 >= len(body) or body[i + 1] not in _ESCAPES:
                raise TermError(f"unsupported escape in {quoted!r}")
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def _term(tokens: list[tuple[str, str]], pos: int, depth: int) -> tuple[Term, int]:
    if depth > MAX_DEPTH:
        raise TermError("nested too deeply")
    if pos >= len(tokens):
        raise TermError("reply ends inside a term")
    kind, text = tokens[pos]
    if kind == "int":
        return int(text), pos + 1
    if kind == "float":
        return float(text), pos + 1
    if kind in ("atom", "qatom"):
        name = text if kind == "atom" else _unquote(text)
        if name in ("true", "false"):
            return name == "true", pos + 1
        return Atom(name), pos + 1
    if kind == "string":
        return _unquote(text), pos + 1
    if text == "{":
        items, pos = _sequence(tokens, pos + 1, "}", depth)
        return tuple(items), pos
    if text == "[":
        items, pos = _sequence(tokens, pos + 1, "]", depth)
        return items, pos
    if text == "#{":
        return _map(tokens, pos + 1, depth)
    raise TermError(f"unexpected {text!r}")


def _sequence(
    tokens: list[tuple[str, str]], pos: int, close: str, depth: int
) -> tuple[list[Term], int]:
    items: list[Term] = []
    if pos < len(tokens) and tokens[pos][1] == close:
        return items, pos + 1
    while True:
        item, pos = _term(tokens, pos, depth + 1)
        items.append(item)
        if pos >= len(tokens):
            raise TermError(f"reply ends before {close!r}")
        sep = tokens[pos][1]
        if sep == close:
            return items, pos + 1
        if sep != ",":
            raise TermError(f"expected ',' or {close!r}, got {sep!r}")
        pos += 1


def _map(tokens: list[tuple[str, str]], pos: int, depth: int) -> tuple[dict[Term, Term], int]:
    out: dict[Term, Term] = {}
    if pos < len(tokens) and tokens[pos][1] == "}":
        return out, pos + 1
    while True:
        key, pos = _term(tokens, pos, depth + 1)
        if pos >= len(tokens) or tokens[pos][1] != "=>":
            raise TermError("expected '=>' in a map")
        value, pos = _term(tokens, pos + 1, depth + 1)
        try:
            out[key] = value
        except TypeError:
            raise TermError("a map key that is a list or map") from None
        if pos >= len(tokens):
            raise TermError("reply ends inside a map")
        sep = tokens[pos][1]
        if sep == "}":
            return out, pos + 1
        if sep != ",":
            raise TermError(f"expected ',' or '}}' in a map, got {sep!r}")
        pos += 1
