"""The error the lab manager raises when it cannot build, start, stop or read the lab.

It hangs off the project's one root::

    RolloutError
    └── LabError        the lab could not be brought up, inspected or controlled

Console and timeout failures of :func:`rollout_lab.control.rpc` use the project's own
:class:`~rollout.errors.ConsoleError` and :class:`~rollout.errors.CommandTimeout`.
"""

from __future__ import annotations

from rollout.errors import RolloutError


class LabError(RolloutError):
    """The local lab could not be brought up, inspected or controlled; the hint says what next."""
