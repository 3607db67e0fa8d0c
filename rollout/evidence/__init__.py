"""A run's evidence as typed values, read from the ledger, for the report page.

- ``values``: the frozen values (timeline ``Mark``s, metric ``Series`` of judged ``Point``s,
  per-host ``HostResult``s, canary/baseline ``Judgement``s, ``SoakWindow``s, ``Evidence``);
- ``decode``: one ledger event read back (its sentence, outcome, who, lane, the points and
  judgements it carries; ``parse_limit`` turns a threshold's text back into a ``Threshold``);
- ``assemble``: ``build`` (pure: a run's records in, its ``Evidence`` out) and ``gather``
  (the one function that reads a ``Ledger``).

The HTML page (``htmlreport.py``) and its charts (``charts.py``) draw from this; canary/baseline
judgements (issue 16) are read from the ``JUDGEMENT_KINDS`` events, in the shapes
``docs/report-page.md`` documents.
"""

from __future__ import annotations

from .assemble import build, gather
from .decode import JUDGEMENT_KINDS, parse_limit
from .values import (
    Evidence,
    HostResult,
    Judgement,
    Lane,
    Mark,
    Point,
    PointState,
    Series,
    Side,
    SoakWindow,
)

__all__ = [
    "JUDGEMENT_KINDS",
    "Evidence",
    "HostResult",
    "Judgement",
    "Lane",
    "Mark",
    "Point",
    "PointState",
    "Series",
    "Side",
    "SoakWindow",
    "build",
    "gather",
    "parse_limit",
]
