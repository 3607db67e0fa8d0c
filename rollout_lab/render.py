"""Rendering the lab's file templates (``rollout_lab/templates/*.j2``).

Templates hold the shape of a config file or script; values come in as arguments, and the
``q`` filter shell-quotes one. Undefined variables are an error.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from rollout.templating import jinja_environment

_TEMPLATES = Path(__file__).resolve().parent / "templates"

_ENV = jinja_environment(
    _TEMPLATES,
    keep_trailing_newline=True,
    filters={"q": lambda value: shlex.quote(str(value))},
)


def render(template: str, **values: object) -> str:
    """The template ``template`` filled with ``values``."""
    return _ENV.get_template(template).render(**values)
