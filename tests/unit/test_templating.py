"""The one Jinja2 environment factory, and that nothing else builds an environment."""

from __future__ import annotations

import ast
from pathlib import Path

import jinja2
import pytest

from rollout.templating import jinja_environment

PACKAGE = Path(__file__).resolve().parents[2] / "rollout"


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    (tmp_path / "t.j2").write_text("{% if x %}\n  {{ x | twice }}\n{% endif %}\n")
    (tmp_path / "html.j2").write_text("{{ x }}")
    return tmp_path


def test_an_undefined_name_is_an_error(templates: Path) -> None:
    """Every environment uses StrictUndefined: a missing variable raises, never renders ''."""
    env = jinja_environment(templates)
    with pytest.raises(jinja2.UndefinedError):
        env.get_template("html.j2").render()


def test_settings_are_passed_through(templates: Path) -> None:
    """Filters, trimmed blocks and the kept trailing newline reach the environment."""
    env = jinja_environment(
        templates, keep_trailing_newline=True, trim_blocks=True, filters={"twice": lambda v: v * 2}
    )
    assert env.get_template("t.j2").render(x="ab") == "  abab\n"
    plain = jinja_environment(templates, filters={"twice": lambda v: v * 2})
    assert plain.get_template("t.j2").render(x="ab") == "\n  abab\n"


def test_autoescape_and_finalize(templates: Path) -> None:
    """The HTML report's settings: values escaped, then passed through finalize."""
    env = jinja_environment(templates, autoescape=True, finalize=lambda v: f"[{v}]")
    assert env.get_template("html.j2").render(x="<b>") == "[&lt;b&gt;]"
    assert jinja_environment(templates).get_template("html.j2").render(x="<b>") == "<b>"


def test_only_the_factory_builds_a_jinja_environment() -> None:
    """No module but rollout/templating.py calls jinja2.Environment or SandboxedEnvironment."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "templating.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("Environment", "SandboxedEnvironment"):
                    found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not found, f"build it with rollout.templating.jinja_environment: {found}"
