"""The engine's layers: every module of ``rollout`` sits in one, and imports point one way.

``LAYER_OF`` maps every module and subpackage of ``rollout`` to a layer; a module may import
from its own layer and the layers below it (``LAYERS`` lists them lowest first), never from a
layer above. Every import counts: module-level, function-local and ``TYPE_CHECKING`` ones,
relative and absolute. docs/architecture.md draws the layers and says what goes where.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rollout"

#: Lowest first. A module may import from its own layer and any layer before it.
LAYERS = ("model", "loaders", "core", "remote", "engine", "commands", "devtools", "cli")

#: Every module of ``rollout`` (dotted, without the ``rollout.`` prefix; "" is the package
#: itself). A subpackage's entry covers every module inside it.
LAYER_OF = {
    # model: values every layer shares; no I/O
    "": "model",
    "errors": "model",
    "clock": "model",
    "flagvalues": "model",
    "models": "model",  # a package: flags, secret, health, policy, phases, hosts, checklist,
    # notifyconfig, playbook (the aggregate); rollout.models exports every name
    "events": "model",
    "output": "model",
    "resources": "model",
    # loaders: files in, model values out, every problem naming its file and line
    "yamlsrc": "loaders",
    "fields": "loaders",
    "vault": "loaders",
    "sshopts": "loaders",
    "inventory": "loaders",
    "playbook": "loaders",  # the package: reader, one module a section, loader
    "templating": "loaders",  # the one Jinja environment; imports nothing of rollout's
    "notification": "loaders",  # a template file in, a webhook body out (playbook checks it)
    # core: pure logic over model values
    "plan": "core",
    "monitor": "core",
    "canary": "core",
    "erlterm": "core",
    "erlcall": "core",
    "report": "core",
    "live": "core",
    "invlist": "core",
    "waveplan": "core",  # a phase's waves as planned; rollout.waves walks them
    "fleetrecord": "core",  # the hosts' record and lease as values; fleetstate carries them
    "consolecode": "core",  # the console's templates, payload and reading values
    # remote: what talks to something outside the process: hosts over SSH, the ledger's stores
    "transport": "remote",
    "fleet": "remote",
    "fleetstate": "remote",
    "console": "remote",
    "consolereply": "remote",  # a console call's output read back (pure, over CommandResult)
    "backend": "remote",
    "database": "remote",
    "schema": "remote",
    "postgres": "remote",
    "lock": "remote",
    "ledger": "remote",
    "ledgercopy": "remote",
    # engine: walks plans through the remote layer; emits events, never prints
    "executor": "engine",  # a package: core, claims, preflight, converging, results
    "soak": "engine",
    "soakrecord": "engine",  # a round's sample event, recorded rounds read back, Split
    "restart": "engine",
    "metrics": "engine",
    "checks": "engine",
    "cancel": "engine",
    "notify": "engine",
    "backup": "engine",
    # commands: one function a task, and what renders their results ("commands" is the
    # rollout/commands/ package: context, running, deploys, rollbacks, ... one a concern)
    "commands": "commands",
    "pipeline": "commands",
    "wiring": "commands",
    "runbook": "commands",
    "evidence": "commands",  # a package: values, decode (one event read back), assemble
    "charts": "commands",
    "history": "commands",
    "htmlreport": "commands",
    "junit": "commands",
    "waves": "commands",
    "wavereport": "commands",
    # devtools: the fakes; only tests and the CLI import them (the lab is its own top-level
    # package, rollout_lab: see test_only_the_cli_imports_the_lab)
    "testing": "devtools",
    # cli: the tasks (rollout/_tasks.py is tasks.py) and the installed command
    "_tasks": "cli",
    "cli": "cli",
    "options": "cli",
}

#: Imports that point the wrong way today, as (importer, imported). Each needs a reason and
#: is a debt to pay; the test fails on any other, and on an entry that no longer occurs.
KNOWN_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    """One import of a ``rollout`` module: where it is and what it names."""

    importer: str
    file: str
    line: int
    target: str
    text: str


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover() -> dict[str, Path]:
    """Every module of the package, by name; symlinked directories (templates/) are not
    walked, the symlinked ``_tasks.py`` is read."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(folder) / name
                found[module_name(path)] = path
    return found


def imports_of(name: str, source: str, file: str, modules: set[str]) -> list[Import]:
    """Every import in ``source`` (module ``name``) that names a module of ``rollout``."""
    is_package = file.endswith("__init__.py")
    package = name if is_package else name.rpartition(".")[0]
    out: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "rollout" or alias.name.startswith("rollout."):
                    target = alias.name.removeprefix("rollout").removeprefix(".")
                    out.append(Import(name, file, node.lineno, target, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                if node.level - 1 > len(base):
                    continue
                base = base[: len(base) - (node.level - 1)]
                if node.module:
                    base.append(node.module)
                where = ".".join(base)
            elif node.module == "rollout" or (node.module or "").startswith("rollout."):
                where = (node.module or "").removeprefix("rollout").removeprefix(".")
            else:
                continue
            for alias in node.names:
                sub = f"{where}.{alias.name}" if where else alias.name
                target = sub if sub in modules else where
                text = f"from {'.' * node.level}{node.module or ''} import {alias.name}"
                out.append(Import(name, file, node.lineno, target, text))
    return out


def layer_key(name: str) -> str | None:
    """The ``LAYER_OF`` entry that covers module ``name``: itself, or its nearest package."""
    parts = name.split(".") if name else []
    while parts:
        key = ".".join(parts)
        if key in LAYER_OF:
            return key
        parts.pop()
    return "" if "" in LAYER_OF and not name else None


def wrong_way(imports: list[Import]) -> list[tuple[Import, str, str]]:
    """Imports from a higher layer: (import, importer's map entry, target's map entry)."""
    out = []
    for imp in imports:
        source, target = layer_key(imp.importer), layer_key(imp.target)
        if source is None or target is None:
            continue  # reported by the unmapped-module test
        if LAYERS.index(LAYER_OF[target]) > LAYERS.index(LAYER_OF[source]):
            out.append((imp, source, target))
    return out


def describe(imp: Import, source: str, target: str) -> str:
    below = ", ".join(LAYERS[: LAYERS.index(LAYER_OF[source]) + 1])
    return (
        f"{imp.file}:{imp.line}: rollout.{imp.importer} ({LAYER_OF[source]}) imports "
        f"rollout.{imp.target} ({LAYER_OF[target]}): `{imp.text}` points the wrong way; "
        f"{LAYER_OF[source]} may import only from {below}. Move the shared code down a layer "
        "or pass it in (docs/architecture.md)"
    )


def all_imports() -> list[Import]:
    modules = discover()
    names = set(modules)
    out: list[Import] = []
    for name, path in modules.items():
        file = str(path.relative_to(ROOT))
        out.extend(imports_of(name, path.read_text(encoding="utf-8"), file, names))
    return out


def test_every_module_is_in_a_layer() -> None:
    """A module that no LAYER_OF entry covers fails, naming the file and where to add it."""
    missing = [
        f"{path.relative_to(ROOT)} (rollout.{name}) is in no layer: add {name!r}: '<layer>' to "
        "LAYER_OF in tests/unit/test_layers.py (the layers and what each holds: "
        "docs/architecture.md)"
        for name, path in discover().items()
        if layer_key(name) is None
    ]
    assert not missing, "\n".join(missing)


def test_every_layer_entry_names_a_module_that_exists() -> None:
    """A LAYER_OF entry for a module or package that is gone fails, so the map stays true."""
    modules = discover()
    stale = [key for key in LAYER_OF if key not in modules]
    bad = [f"{key}: {layer}" for key, layer in LAYER_OF.items() if layer not in LAYERS]
    assert not stale, f"LAYER_OF names modules that do not exist: {stale}"
    assert not bad, f"LAYER_OF uses layers not in LAYERS: {bad}"


def test_imports_point_down_the_layers() -> None:
    """No module imports from a layer above its own, except the listed known exceptions."""
    found = [
        describe(imp, source, target)
        for imp, source, target in wrong_way(all_imports())
        if (source, target) not in KNOWN_EXCEPTIONS
    ]
    assert not found, "\n".join(found)


def test_known_exceptions_still_occur() -> None:
    """An exception that no longer occurs is removed from KNOWN_EXCEPTIONS, not left behind."""
    occurring = {(source, target) for _, source, target in wrong_way(all_imports())}
    gone = sorted(KNOWN_EXCEPTIONS - occurring)
    assert not gone, f"remove from KNOWN_EXCEPTIONS (fixed): {gone}"


def test_nothing_below_the_cli_imports_the_fakes() -> None:
    """rollout.testing is dev tooling: no engine module imports it."""
    cli = LAYERS.index("cli")
    found = [
        f"{imp.file}:{imp.line}: rollout.{imp.importer} imports rollout.{imp.target}"
        for imp in all_imports()
        if layer_key(imp.target) == "testing"
        and layer_key(imp.importer) != "testing"
        and LAYERS.index(LAYER_OF[layer_key(imp.importer) or ""]) < cli
    ]
    assert not found, "\n".join(found)


def lab_imports(name: str, source: str) -> list[int]:
    """The lines of ``source`` that import the lab (``rollout_lab``), at any depth."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        if any(n == "rollout_lab" or n.startswith("rollout_lab.") for n in names):
            lines.append(node.lineno)
    return lines


def test_only_the_cli_imports_the_lab() -> None:
    """The lab (rollout_lab, beside the engine) is development tooling: of the engine's
    modules only the CLI layer (the lab.* tasks) may import it."""
    found = [
        f"{path.relative_to(ROOT)}:{line}: rollout.{name} imports rollout_lab; only the CLI "
        "layer may (the lab.* tasks)"
        for name, path in discover().items()
        if LAYER_OF.get(layer_key(name) or "") != "cli"
        for line in lab_imports(name, path.read_text(encoding="utf-8"))
    ]
    assert not found, "\n".join(found)


def test_the_lab_check_finds_a_lab_import() -> None:
    assert lab_imports("plan", "def f():\n    from rollout_lab import control\n") == [2]
    assert lab_imports("plan", "import rollout_lab.faults\n") == [1]
    assert lab_imports("plan", "from .lab import x\n") == []


@pytest.mark.parametrize(
    ("importer", "file", "source", "target"),
    [
        ("plan", "rollout/plan.py", "from .commands import Context\n", "commands"),
        ("plan", "rollout/plan.py", "def f():\n    from rollout.executor import X\n", "executor"),
        ("plan", "rollout/plan.py", "import rollout.testing\n", "testing"),
        ("inventory.loader", "rollout/inventory/loader.py", "from ..backup import x\n", "backup"),
        ("plan", "rollout/plan.py", "from rollout import soak\n", "soak"),
        ("commands.deploys", "rollout/commands/deploys.py", "from ..testing import x\n", "testing"),
        ("commands.running", "rollout/commands/running.py", "def f():\n    from ..cli import e\n",
         "cli"),
        ("commands", "rollout/commands/__init__.py", "from ..options import Flags\n", "options"),
        ("commands.context", "rollout/commands/context.py", "import rollout.options\n", "options"),
    ],
)
def test_the_checker_reports_a_wrong_way_import(
    importer: str, file: str, source: str, target: str
) -> None:
    """A wrong-way import, relative, absolute or inside a function, is named with its line."""
    found = wrong_way(imports_of(importer, source, file, set(discover())))
    assert [imp.target.split(".")[0] for imp, _, _ in found] == [target]
    message = describe(*found[0])
    assert message.startswith(f"{file}:{source.count(chr(10))}: rollout.{importer} (")
    assert f"imports rollout.{found[0][0].target} (" in message


def test_the_checker_accepts_imports_that_point_down() -> None:
    """Imports of the same layer and of layers below are not reported."""
    source = "from .models import Host\nfrom .yamlsrc import load_text\nfrom . import monitor\n"
    assert wrong_way(imports_of("plan", source, "rollout/plan.py", set(discover()))) == []


def test_the_checker_resolves_imports_inside_a_subpackage() -> None:
    """In ``rollout/commands/``, ``.x`` is a sibling module and ``..x`` a module of rollout;
    those of the same layer and below are not reported."""
    source = (
        "from .context import Context\nfrom ..executor import Executor\n"
        "from .. import wiring\ndef f():\n    from ..waves import current_wave\n"
    )
    found = imports_of("commands.deploys", source, "rollout/commands/deploys.py", set(discover()))
    assert [imp.target for imp in found] == ["commands.context", "executor", "wiring", "waves"]
    assert [layer_key(imp.target) for imp in found] == ["commands", "executor", "wiring", "waves"]
    assert wrong_way(found) == []
