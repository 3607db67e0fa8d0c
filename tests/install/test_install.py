"""``pip install .`` and ``pip install -e .`` into fresh virtualenvs, then the ``rollout`` command.

Offline on purpose: the fresh venv has no packages of its own; one ``.pth`` line lends it the
test venv's site-packages, so pip resolves the declared dependencies there (``--no-index``:
nothing is downloaded) and the build backend is the test venv's setuptools
(``--no-build-isolation``). The project is copied first, so the checkout gets no build/ or
egg-info. Each test runs the command from an empty directory, far from any checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from rollout_lab import Lab
from rollout_lab.testing import clean_lab_fixture, lab_fixture  # noqa: F401

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
LAB_HOSTS = 1
_SKIP = shutil.ignore_patterns(
    ".venv", ".git", ".lab", ".rollout", "build", "*.egg-info", "__pycache__", "_build", "deps",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", "backups", "results",
)  # fmt: skip


_PURELIB = "import sysconfig; print(sysconfig.get_path('purelib'))"


def _venv(root: Path) -> Path:
    """A venv with no packages of its own that sees the test venv's site-packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(
        subprocess.run(
            [str(root / "bin" / "python"), "-c", _PURELIB],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "_shared_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return root


def _env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return env


def _install(tmp: Path, *pip_args: str) -> Path:
    src = tmp / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=_SKIP)
    venv = _venv(tmp / "venv")
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    ran = subprocess.run(
        [*pip, "install", "--no-index", "--no-build-isolation", *pip_args, str(src)],
        capture_output=True, text=True, env=_env(venv), timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    return venv


def _rollout(venv: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    ran = subprocess.run(
        [str(venv / "bin" / "rollout"), *args],
        cwd=cwd, capture_output=True, text=True, env={**_env(venv), **(env or {})}, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield _install(tmp_path_factory.mktemp("wheel"))


def test_pip_install_gives_a_rollout_command_with_every_task(
    installed: Path, tmp_path: Path
) -> None:
    """After ``pip install .`` the package comes from the venv (not the checkout) and
    ``rollout --list`` names the same tasks as ``invoke --list`` in the checkout."""
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import rollout, rollout.resources as r; "
         "print(rollout.__file__); print(r.TEMPLATES); print(r.PACKAGED_PLAYBOOK)"],
        cwd=tmp_path, capture_output=True, text=True, env=_env(installed), check=True,
    ).stdout.split()  # fmt: skip
    assert all(str(installed) in line for line in where), where
    assert Path(where[1], "console", "apply_flags.exs.j2").is_file()
    assert Path(where[1], "report.html.j2").is_file()
    assert Path(where[2]).is_file()
    listed = _rollout(installed, tmp_path, "--list")
    invoke = subprocess.run(
        [str(Path(sys.executable).parent / "invoke"), "--list"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = set(re.findall(r"^  (\S+)", invoke, re.M))
    assert {"deploy", "plan", "rollback", "lab.up"} <= names
    assert set(re.findall(r"^  (\S+)", listed, re.M)) == names
    assert "Usage: rollout " in _rollout(installed, tmp_path, "--help", "deploy")


def test_installed_rollout_plans_against_the_lab(
    installed: Path, clean_lab: Lab, tmp_path: Path
) -> None:
    """``rollout plan --phase 1`` from an empty directory reads the lab through the packaged
    playbook and templates, and shows phase 1's changes for every host."""
    out = _rollout(
        installed, tmp_path, "plan", "--phase", "1", "--inventory", str(clean_lab.inventory),
        env={"ROLLOUT_LEDGER": str(tmp_path / "ledger.db")},
    )  # fmt: skip
    for host in clean_lab.hosts:
        assert host.name in out, out
    assert "deploy to Phase 1" in out, out
    assert "use_new_error_handling: off -> on" in out, out


def test_editable_install_runs_from_the_source_tree(tmp_path: Path) -> None:
    """``pip install -e .`` gives a ``rollout`` command whose package is the source tree itself."""
    venv = _install(tmp_path, "-e")
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import rollout.cli, rollout.resources as r; "
         "print(rollout.cli.__file__); print(r.TEMPLATES)"],
        cwd=tmp_path, capture_output=True, text=True, env=_env(venv), check=True,
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(tmp_path / "src")), where
    assert Path(where[1], "runbook.md.j2").is_file()
    assert "deploy" in _rollout(venv, tmp_path, "--list")


def test_runtime_dependencies_are_declared_and_pinned() -> None:
    """Every runtime requirement of requirements.txt is a dependency in pyproject.toml and the
    other way round, so an installed rollout gets what the tests ran with."""
    declared = {
        re.split(r"[<>=!~ ;\[]", dep, maxsplit=1)[0].lower()
        for dep in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    text = (REPO / "requirements.txt").read_text()
    runtime = text.split("# Runtime", 1)[1].split("# Tests and checks", 1)[0]
    pinned = {line.split("==")[0].strip().lower() for line in runtime.splitlines() if "==" in line}
    assert declared == pinned


def test_every_package_of_rollout_is_listed_for_the_wheel() -> None:
    """pyproject.toml lists packages explicitly; every package under rollout/ and rollout_lab/
    is in that list, so a new subpackage cannot be left out of a wheel."""
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("rollout", "rollout_lab")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert found == listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
