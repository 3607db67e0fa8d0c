"""Rendering the lab's file templates (``rollout/lab/templates/*.j2``).

Templates hold the shape of a config file or script; values come in as arguments, and the
``q`` filter shell-quotes one. Undefined variables are an error.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import jinja2

_TEMPLATES = Path(__file__).resolve().parent / "templates"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)
_ENV.filters["q"] = lambda value: shlex.quote(str(value))


def render(template: str, **values: object) -> str:
    """The template ``template`` filled with ``values``."""
    return _ENV.get_template(template).render(**values)
