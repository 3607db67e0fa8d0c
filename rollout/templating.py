"""The one way rollout builds a Jinja2 environment.

Every environment loads its templates from one directory and uses ``StrictUndefined``: an
undefined name is an error, never an empty string (STYLE.md, rule 7). What differs between the
users is passed explicitly, so each one's settings can be read at its call:

* remote-console code (:mod:`rollout.console`): text, trailing newline kept;
* webhook bodies (:mod:`rollout.notification`): text, trailing newline kept, JSON and Slack filters;
* the HTML report (:mod:`rollout.htmlreport`): autoescaped, ``finalize`` making control
  characters visible, block tags trimmed, a number filter;
* the lab's config files and scripts (:mod:`rollout_lab.render`): text, a shell-quoting filter.

None of them is sandboxed: every template is a file of the checkout (``templates/``, the
lab's), written by its operators, never input from a host. Templates hold code, never data;
values reach them as arguments. (``{{ name }}`` references between inventory variables are
not Jinja: :mod:`rollout.inventory.references`.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2

__all__ = ["jinja_environment"]


def jinja_environment(
    directory: str | Path,
    *,
    autoescape: bool = False,
    keep_trailing_newline: bool = False,
    trim_blocks: bool = False,
    finalize: Callable[[Any], Any] | None = None,
    filters: Mapping[str, Callable[..., Any]] | None = None,
) -> jinja2.Environment:
    """A Jinja2 environment over ``directory`` with ``StrictUndefined``.

    ``trim_blocks`` also strips the whitespace before a block tag (Jinja's ``lstrip_blocks``):
    the report wants both or neither. ``filters`` are added to Jinja's own.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(directory)),
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        keep_trailing_newline=keep_trailing_newline,
        trim_blocks=trim_blocks,
        lstrip_blocks=trim_blocks,
        finalize=finalize,
    )
    env.filters.update(filters or {})
    return env
