"""The readiness checklist: the playbook's ``checks:`` run against a source tree and the fleet.

Five kinds of check (``docs/checks.md``): ``pattern`` and ``balance`` read the service's source
tree; ``reachability`` and ``metric`` ask every selected host through the backend seam;
``command`` runs an argv locally (no shell) or on every host. A check that cannot see what it
is meant to judge (no source tree, no matching file, an unreachable host, a metric a host does
not report) FAILS; nothing passes by default.

The scanning and tallying are pure; the only I/O goes through three seams: the source
tree (read only), :class:`~rollout.backend.Backend`, and a :data:`LocalRunner`. The engine
emits a ``check`` event per result and never prints: :func:`render_checks` returns the text
and ``rollout.junit.junit_xml`` the JUnit XML, for the caller to write.

The package, one module a part: ``results`` (the result values, how a result is built and
worded), ``local`` (the local command runner), ``source`` (the source tree walk, ``pattern``
and ``balance``), ``fleet`` (``reachability``, ``metric``, host and local ``command``),
``runner`` (:func:`run_checks`) and ``render`` (:func:`render_checks`).
"""

from __future__ import annotations

from .local import LocalResult, LocalRunner, run_local
from .render import render_checks
from .results import MAX_DETAILS, CategoryTally, CheckReport, CheckResult
from .runner import run_checks
from .source import Hit, find_hits

__all__ = [
    "MAX_DETAILS",
    "CategoryTally",
    "CheckReport",
    "CheckResult",
    "Hit",
    "LocalResult",
    "LocalRunner",
    "find_hits",
    "render_checks",
    "run_checks",
    "run_local",
]
