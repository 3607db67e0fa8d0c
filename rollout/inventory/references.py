"""``{{ name }}`` references between inventory variables: lookups only, never code.

Ansible templates every variable with Jinja2 when it is used. rollout accepts the subset an
inventory needs to say one value in terms of another, and refuses the rest with an error, so a
value is either Ansible's or rejected, never different:

* ``{{ name }}``, ``{{ name.key }}``, ``{{ name['key'] }}``, ``{{ name[0] }}``: a variable, or a
  key or item inside one; a string that is exactly one reference takes the referenced value's
  type (``ansible_port: "{{ base_port }}"`` is an integer, as in ansible-core 2.19);
* text around references (``"{{ env }}.example.com"``) joins them as text.

Filters (``| default``), tests, arithmetic, ``{% ... %}`` and ``{# ... #}`` are refused: a
filter can run code (``lookup('pipe', ...)``). Rendering is pure: ``lookup`` gives a
variable's rendered value and whether it is secret (vault); the result is secret when any
reference was.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

__all__ = ["TemplateRefused", "has_template", "render"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REF_RE = re.compile(
    rf"\{{\{{\s*({_NAME}(?:\s*(?:\.{_NAME}|\[\s*(?:'[^']*'|\"[^\"]*\"|-?\d+)\s*\]))*)\s*\}}\}}"
)
_STEP_RE = re.compile(rf"\.({_NAME})|\[\s*(?:'([^']*)'|\"([^\"]*)\"|(-?\d+))\s*\]")
_MARKERS = ("{{", "{%", "{#", "}}")

Lookup = Callable[[str], tuple[object, bool]]


class TemplateRefused(ValueError):
    """A template outside the supported subset, or a reference that does not resolve."""


def has_template(value: object) -> bool:
    if isinstance(value, str):
        return any(m in value for m in _MARKERS)
    if isinstance(value, Mapping):
        return any(has_template(k) or has_template(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(has_template(v) for v in value)
    return False


def _resolve(expr: str, lookup: Lookup) -> tuple[object, bool]:
    name = re.match(_NAME, expr)
    assert name is not None
    value, secret = lookup(name.group(0))
    rest = expr[name.end() :].replace(" ", "")
    for step in _STEP_RE.finditer(rest):
        attr, single, double, index = step.groups()
        key: object
        if index is not None:
            key = int(index)
        elif attr is not None:
            key = attr
        else:
            key = single if single is not None else double
        if isinstance(value, Mapping) and key in value:
            value = value[key]
        elif isinstance(value, Sequence) and not isinstance(value, str) and isinstance(key, int):
            try:
                value = value[key]
            except IndexError:
                raise TemplateRefused(f"{{{{ {expr} }}}}: index {key} is out of range") from None
        else:
            raise TemplateRefused(f"{{{{ {expr} }}}}: {name.group(0)} has no {key!r}")
    return value, secret


def render(value: object, lookup: Lookup) -> tuple[object, bool]:
    """``value`` with every reference replaced; (result, whether a secret went into it)."""
    if isinstance(value, str):
        return _render_text(value, lookup)
    if isinstance(value, Mapping):
        if not has_template(value):
            return value, False
        out: dict[object, object] = {}
        secret = False
        for k, v in value.items():
            rk, sk = render(k, lookup)
            rv, sv = render(v, lookup)
            out[rk] = rv
            secret = secret or sk or sv
        return out, secret
    if isinstance(value, (list, tuple)):
        if not has_template(value):
            return value, False
        items = [render(v, lookup) for v in value]
        return [v for v, _ in items], any(s for _, s in items)
    return value, False


def _render_text(text: str, lookup: Lookup) -> tuple[object, bool]:
    if not any(m in text for m in _MARKERS):
        return text, False
    whole = _REF_RE.fullmatch(text)
    if whole:
        return _resolve(whole.group(1), lookup)
    parts: list[str] = []
    secret = False
    pos = 0
    for m in _REF_RE.finditer(text):
        parts.append(text[pos : m.start()])
        value, sec = _resolve(m.group(1), lookup)
        if isinstance(value, (Mapping, list, tuple)):
            raise TemplateRefused(
                f"{{{{ {m.group(1)} }}}} is a {type(value).__name__} inside text"
            )
        parts.append("" if value is None else str(value))
        secret = secret or sec
        pos = m.end()
    parts.append(text[pos:])
    rest = _REF_RE.sub("", text)
    if any(m in rest for m in _MARKERS):
        raise TemplateRefused(
            "only {{ variable }} lookups are supported (no filters, tests, expressions, "
            "{% %} or {# #})"
        )
    return "".join(parts), secret
