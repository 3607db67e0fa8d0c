"""Safe YAML loading that remembers where every key and item came from.

Mappings load as :class:`Node` dicts and sequences as :class:`NodeList`; both know the file
and the line of each key or item, so loaders can report ``file:line (key)`` for any mistake.
Duplicate keys are an error (PyYAML silently keeps the last one).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, SourceLocation

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class Node(dict[str, Any]):
    """A YAML mapping that knows the line of each key."""

    file: str = "<string>"
    line: int = 0
    key_lines: dict[str, int]

    def loc(self, key: str | None = None, path: str | None = None) -> SourceLocation:
        line = self.key_lines.get(key, self.line) if key is not None else self.line
        return SourceLocation(self.file, line, path or key)


class NodeList(list[Any]):
    """A YAML sequence that knows the line of each item."""

    file: str = "<string>"
    line: int = 0
    item_lines: list[int]

    def loc(self, index: int | None = None, path: str | None = None) -> SourceLocation:
        line = self.line if index is None else self.item_lines[index]
        return SourceLocation(self.file, line, path)


#: libyaml's parser when PyYAML was built with it (about 9x faster on a 50-host inventory;
#: it gives the same marks); the pure-Python one otherwise.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader building Node/NodeList; no Python object construction is possible."""

    source_name = "<string>"


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Node:
    loader.flatten_mapping(node)
    out = Node()
    out.file = loader.source_name
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise InputError(
                "mapping keys must be plain scalars",
                location=SourceLocation(loader.source_name, line),
            )
        skey = str(key)
        if skey in out:
            raise InputError(
                f"duplicate key {skey!r} (first at line {out.key_lines[skey]})",
                location=SourceLocation(loader.source_name, line, skey),
                hint="remove one of the two entries",
            )
        out[skey] = loader.construct_object(value_node, deep=True)
        out.key_lines[skey] = line
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> NodeList:
    out = NodeList(loader.construct_object(child, deep=True) for child in node.value)
    out.file = loader.source_name
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_text(text: str, source: str) -> Any:
    """Parse YAML ``text``; errors name ``source`` and the line."""
    loader = _Loader(text)
    loader.source_name = source
    try:
        return loader.get_single_data()
    except InputError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise InputError(
            f"not valid YAML: {exc.problem or exc}",
            location=SourceLocation(source, line),
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", location=SourceLocation(source)) from None
    finally:
        loader.dispose()


#: The largest YAML input read by default (playbooks; inventories and vars files pass theirs).
MAX_INPUT_BYTES = 1_000_000


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):  # fmt: skip
        if test(mode):
            return name
    return "not a regular file"


def read_input(path: str | Path, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``max_bytes`` long.

    Inputs come only from regular files: a FIFO would block the run forever and ``/dev/zero``
    would fill memory, so both are refused before a byte is read (the open never waits: it
    is non-blocking, and the kind is checked on the opened file). InputError names the path.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise InputError(
                f"{p}: is {_kind_of(mode)}, not a regular file",
                hint="inputs (playbooks, inventories, vars files, templates) are read only "
                "from regular files",
            )
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as handle:
            fd = -1
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"{p}: cannot read: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    if len(data) > max_bytes:
        raise InputError(
            f"{p}: is larger than {max_bytes} bytes",
            hint=f"an input of this kind is at most {max_bytes} bytes",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        why = f"not UTF-8 ({exc.reason} at byte {exc.start})"
        raise InputError(f"{p}: cannot read: {why}") from None


def load_file(path: str | Path, max_bytes: int = MAX_INPUT_BYTES) -> Any:
    """Read and parse a YAML file; a missing, unreadable, irregular or oversized file is an
    InputError."""
    return load_text(read_input(path, max_bytes), str(path))


def parse_duration(value: object, location: SourceLocation) -> float:
    """``30m``, ``2h``, ``24h``, ``500ms``, ``45`` (seconds) -> seconds; else InputError."""
    if isinstance(value, bool):
        raise InputError(f"expected a duration like 30s, 2h; got {value!r}", location=location)
    if isinstance(value, (int, float)):
        if value < 0:
            raise InputError("a duration cannot be negative", location=location)
        return float(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    raise InputError(
        f"expected a duration like 30s, 30m, 2h or 24h; got {value!r}", location=location
    )


def format_duration(seconds: float) -> str:
    """Seconds -> the shortest exact ``24h``/``30m``/``45s`` style text."""
    if seconds >= 86400 and seconds % 86400 == 0 and seconds >= 172800:
        return f"{int(seconds // 86400)}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds >= 60:
        whole = int(round(seconds))
        hours, rest = divmod(whole, 3600)
        minutes, secs = divmod(rest, 60)
        parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "",
                 f"{secs}s" if secs else ""]  # fmt: skip
        return "".join(parts)
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


@dataclass(frozen=True)
class VaultText:
    """An inline ``!vault`` value, still encrypted; only the inventory loader decrypts it."""

    ciphertext: str
    line: int

    def __repr__(self) -> str:  # never the ciphertext in an error message
        return "<!vault value>"


def _construct_vault(loader: _Loader, node: yaml.Node) -> VaultText:
    if not isinstance(node, yaml.ScalarNode):
        raise InputError(
            "a !vault value must be a string (the output of ansible-vault encrypt_string)",
            location=SourceLocation(loader.source_name, node.start_mark.line + 1),
        )
    return VaultText(str(loader.construct_scalar(node)), node.start_mark.line + 1)


_Loader.add_constructor("!vault", _construct_vault)
