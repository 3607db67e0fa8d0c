"""Where a secret URL comes from: ``url_env`` (a variable's name) or ``url_file`` (a path).

A Prometheus base URL (``health.source``) and a webhook URL (``notify.webhook``) may carry a
token, so the playbook never holds one literally; it names where to read it when needed.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..fields import show
from ..yamlsrc import Node
from .reader import fail, read_text, resolve

__all__ = ["ENV_NAME_RE", "URL_FROM", "read_url_source"]

ENV_NAME_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
#: Where a secret URL may come from (a literal URL is refused: it may carry a token).
URL_FROM = "url_env: NAME (an environment variable) or url_file: path"


def read_url_source(
    node: Node, path: str, what: str, url: str, example: str, base_dir: Path | None
) -> tuple[str | None, str | None]:
    """Exactly one of ``url_env`` (a variable name) and ``url_file`` (resolved path)."""
    if ("url_env" in node) == ("url_file" in node):
        both = "url_env" in node
        fail(
            node.loc("url_file", f"{path}.url_file") if both else node.loc(None, path),
            "give exactly one of `url_env` and `url_file`"
            if both
            else f"{what} needs `url_env` or `url_file`",
            f"{url} comes from {URL_FROM}",
        )
    if "url_env" in node:
        url_env = read_text(node, "url_env", f"{path}.url_env", max_len=128)
        if not ENV_NAME_RE.fullmatch(url_env):
            fail(
                node.loc("url_env", f"{path}.url_env"),
                f"{show(url_env)} is not an environment variable name",
                f"use uppercase letters, digits and '_', e.g. {example}",
            )
        return url_env, None
    return None, resolve(read_text(node, "url_file", f"{path}.url_file", max_len=4096), base_dir)
