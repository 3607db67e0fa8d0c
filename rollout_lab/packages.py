"""The Debian packages the lab needs, installed only when one of their programs is missing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

from .account import which
from .errors import LabError

#: program -> the package that provides it
REQUIRED_PROGRAMS: dict[str, str] = {
    "elixir": "elixir",
    "mix": "elixir",
    "erl": "erlang-dev",
    "epmd": "erlang-dev",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
}
PACKAGES = ("elixir", "erlang-dev", "openssh-server", "openssh-client")


def missing_programs() -> list[str]:
    """The programs of :data:`REQUIRED_PROGRAMS` that are not installed."""
    return [name for name in REQUIRED_PROGRAMS if which(name) is None]


def ensure_packages(log: Callable[[str], None]) -> None:
    """Install the lab's packages with apt-get if any of their programs is missing."""
    missing = missing_programs()
    if not missing:
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if os.geteuid() != 0:
        raise LabError(
            f"missing programs: {', '.join(missing)}",
            hint=f"install them as root: {' '.join(command)}",
        )
    log(f"installing {' '.join(PACKAGES)} (missing: {', '.join(missing)})")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (["apt-get", "update"], command):
        proc = subprocess.run(
            step, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise LabError(
                f"`{' '.join(step)}` failed:\n{tail}",
                hint="fix apt (network, sources) and run `invoke lab.up` again",
            )
    still = missing_programs()
    if still:
        raise LabError(
            f"still missing after apt-get: {', '.join(still)}",
            hint="check which packages provide them on this distribution",
        )
