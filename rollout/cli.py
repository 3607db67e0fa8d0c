"""The ``rollout`` console command: the tasks of ``tasks.py``, runnable from anywhere.

``invoke deploy --phase 3`` in a checkout and ``rollout deploy --phase 3`` after
``pip install .`` run the same task functions: ``rollout/_tasks.py`` is a symlink to the
checkout's ``tasks.py`` (a wheel carries a copy), so the two can never drift apart.
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.program import Program

from . import __version__

__all__ = ["main", "program"]


def program() -> Program:
    """An Invoke program named ``rollout`` over the tasks of ``tasks.py``."""
    from . import _tasks

    return Program(
        namespace=Collection.from_module(_tasks),
        name="rollout",
        binary="rollout",
        version=__version__,
    )


def main() -> None:
    """Entry point of the ``rollout`` console script."""
    program().run()
