"""The source tree checks, ``pattern`` and ``balance``: pure apart from reading files.

The file walk (globs under the source root, excludes, no symlink out of the tree) and
:func:`find_hits` (every regex match with its line) feed :func:`check_pattern` and
:func:`check_balance`. A tree that is not configured or not there raises :class:`NoTree`,
which the runner turns into the check's failure.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import RolloutError
from ..models import BalanceCheck, PatternCheck
from .results import CheckResult, failing, passing, plural, printable

#: Bytes read from each source file; longer files are scanned up to here.
MAX_FILE_BYTES = 4_000_000


@dataclass(frozen=True)
class Hit:
    """One regex match in one file."""

    path: str  # relative to the source root, with '/'
    line: int
    pattern: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.excerpt}  [{self.pattern}]"


def find_hits(path: str, text: str, patterns: Sequence[re.Pattern[str]]) -> list[Hit]:
    """Every match of ``patterns`` in ``text``, with its line number, in line order."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    hits = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            line = bisect.bisect_right(starts, match.start())
            end = text.find("\n", starts[line - 1])
            excerpt = text[starts[line - 1] : end if end >= 0 else len(text)]
            hits.append(Hit(path, line, pattern.pattern, printable(excerpt.strip(), 100)))
    return sorted(hits, key=lambda h: (h.line, h.pattern))


class NoTree(RolloutError):
    """The source tree is not configured or not there: every source check fails with this."""


def _source_files(
    root: Path | None, globs: Sequence[str], exclude: Sequence[str]
) -> tuple[list[tuple[str, Path]], list[str]]:
    """(relative path, file) for each file the globs match, and the globs that match none."""
    if root is None:
        raise NoTree(
            "no source tree is configured: set checks.source_root in the playbook or pass --source"
        )
    if not root.is_dir():
        raise NoTree(f"source tree {root} does not exist: check checks.source_root or --source")
    base = root.resolve()
    problems = []
    found: dict[str, Path] = {}
    for pattern in globs:
        matched = 0
        for file in _glob(root, pattern):
            real = file.resolve()
            if not real.is_relative_to(base):
                continue  # a symlink out of the tree is not the service's source
            found[file.relative_to(root).as_posix()] = file
            matched += 1
        if not matched:
            problems.append(f"{pattern}: matches no file under {root}")
    dropped = {
        file.relative_to(root).as_posix() for pattern in exclude for file in _glob(root, pattern)
    }
    return sorted((rel, p) for rel, p in found.items() if rel not in dropped), problems


def _glob(root: Path, pattern: str) -> list[Path]:
    try:
        return [p for p in root.glob(pattern) if p.is_file()]
    except (ValueError, NotImplementedError) as exc:
        raise RolloutError(f"bad glob {pattern!r}: {exc}") from None


def _read(path: Path) -> str:
    with path.open("rb") as fh:
        return fh.read(MAX_FILE_BYTES).decode("utf-8", "replace")


def _unmatched(problems: Sequence[str]) -> list[str]:
    return [f"{plural(len(problems), 'glob')} matched no file"] if problems else []


def check_pattern(check: PatternCheck, root: Path | None) -> CheckResult:
    files, problems = _source_files(root, check.paths, check.exclude)
    hits: list[Hit] = []
    lacking: list[str] = []
    for rel, path in files:
        text = _read(path)
        hits.extend(find_hits(rel, text, check.forbid))
        lacking.extend(
            f"{rel}: no match for {req.pattern}" for req in check.require if not req.search(text)
        )
    count = plural(len(files), "file")
    if problems or hits or lacking:
        parts = _unmatched(problems)
        if hits:
            where = len({h.path for h in hits})
            parts.append(f"{plural(len(hits), 'forbidden match')} in {plural(where, 'file')}")
        if lacking:
            parts.append(
                f"{len({x.split(':')[0] for x in lacking})} of {count} lack a required match"
            )
        return failing(check, "; ".join(parts), [*problems, *map(str, hits), *lacking])
    what = "no forbidden pattern" if check.forbid else ""
    if check.require:
        what = (what + " and " if what else "") + "every required pattern"
    return passing(check, f"{what} in {count}")


def check_balance(check: BalanceCheck, root: Path | None) -> CheckResult:
    files, problems = _source_files(root, check.paths, check.exclude)
    unbalanced = []
    opens_total = 0
    for rel, path in files:
        text = _read(path)
        opens = find_hits(rel, text, [check.open])
        closes = len(check.close.findall(text))
        opens_total += len(opens)
        if len(opens) > closes:
            unbalanced.append(
                f"{rel}:{opens[0].line}: {len(opens)} x {check.open.pattern}"
                f" but {closes} x {check.close.pattern}"
            )
    if problems or unbalanced:
        parts = _unmatched(problems)
        if unbalanced:
            parts.append(
                f"{plural(len(unbalanced), 'file')} of {len(files)} open more than they close"
            )
        return failing(check, "; ".join(parts), [*problems, *unbalanced])
    return passing(
        check, f"{plural(len(files), 'file')} balanced ({opens_total} opened, all closed)"
    )
