"""The lab's system user, and running commands as that user.

Every process of the lab (sshd, epmd, the Foundation nodes, ``rpc`` clients) runs as one
unprivileged user whose login shell is ``/bin/sh``, so that no rc file of root's (pyenv init
and the like) runs for each remote command. Commands get a small fixed environment: nothing
from the caller (``RELEASE_*``, ``ERL_*``) leaks into a node.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError

DEFAULT_USER = "rolloutlab"
_SHELL = "/bin/sh"
_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class LabUser:
    """The account every lab process runs as."""

    name: str
    uid: int
    gid: int
    home: Path

    @classmethod
    def lookup(cls, name: str) -> LabUser | None:
        """The account called ``name``, or None if there is none."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))

    @classmethod
    def of_uid(cls, uid: int) -> LabUser:
        """The account with numeric id ``uid`` (the owner of a lab host's directory)."""
        try:
            entry = pwd.getpwuid(uid)
        except KeyError as exc:
            raise LabError(
                f"no account has uid {uid}", hint="run `invoke lab.up` to recreate the lab user"
            ) from exc
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The whole environment a lab command gets."""
        env = {
            "PATH": _PATH,
            "HOME": str(self.home),
            "USER": self.name,
            "LOGNAME": self.name,
            "SHELL": _SHELL,
            "LANG": "C.UTF-8",
        }
        if extra:
            env.update(extra)
        return env

    @property
    def is_current(self) -> bool:
        """Whether this process already runs as this user (no switch needed)."""
        return os.geteuid() == self.uid


def ensure_user(name: str | None = None) -> LabUser:
    """The lab user, created as a system account if missing.

    Without root the lab runs as the current user, since nothing else is possible.
    """
    if os.geteuid() != 0:
        current = LabUser.of_uid(os.geteuid())
        if name not in (None, current.name):
            raise LabError(
                f"cannot run the lab as {name!r} without root",
                hint="run `invoke lab.up` as root, or leave the lab user at its default",
            )
        return current
    name = name or DEFAULT_USER
    user = LabUser.lookup(name)
    if user is None:
        home = Path("/var/lib") / name
        proc = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--shell",
                _SHELL,
                "--home-dir",
                str(home),
                "--no-create-home",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        user = LabUser.lookup(name)
        if user is None:
            raise LabError(
                f"could not create the lab user {name!r}: {proc.stderr.strip()}",
                hint=f"create it by hand: useradd --system --user-group --shell {_SHELL} {name}",
            )
    if not user.home.is_dir():
        user.home.mkdir(parents=True, exist_ok=True)
        os.chown(user.home, user.uid, user.gid)
    return user


def run_as(
    user: LabUser,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as ``user`` with the lab environment and return what it printed.

    On timeout the whole process group is killed and :class:`subprocess.TimeoutExpired`
    propagates.
    """
    switch = not user.is_current
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=user.env(env),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        user=user.uid if switch else None,
        group=user.gid if switch else None,
        extra_groups=[] if switch else None,
    )
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def spawn_as(user: LabUser, argv: Sequence[str], *, log: Path, cwd: Path | None = None) -> int:
    """Start ``argv`` as ``user`` detached from this process; return its pid.

    A throwaway ``sh`` starts the command in the background, prints its pid and exits, so
    the command is adopted by init and outlives this process.
    """
    log.touch()
    if os.geteuid() == 0:
        os.chown(log, user.uid, user.gid)
    script = '"$@" </dev/null >>"$LAB_LOG" 2>&1 &\necho $!'
    proc = run_as(
        user,
        ["/bin/sh", "-c", script, "sh", *argv],
        cwd=cwd,
        env={"LAB_LOG": str(log)},
        timeout=10,
    )
    text = proc.stdout.strip()
    if proc.returncode != 0 or not text.isdigit():
        raise LabError(f"could not start {argv[0]}: {proc.stderr.strip() or text}")
    return int(text)


def can_traverse(user: LabUser, path: Path) -> bool:
    """Whether ``user`` can reach and list ``path`` (every parent searchable)."""
    if user.is_current:
        return os.access(path, os.R_OK | os.X_OK)
    proc = run_as(
        user, ["/bin/sh", "-c", 'test -r "$1" && test -x "$1"', "sh", str(path)], timeout=10
    )
    return proc.returncode == 0


def chown_tree(path: Path, user: LabUser) -> None:
    """Give ``path`` and everything under it to ``user`` (no-op without root)."""
    if os.geteuid() != 0:
        return
    os.chown(path, user.uid, user.gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), user.uid, user.gid, follow_symlinks=False)


def which(name: str, *extra_dirs: str) -> str | None:
    """Where ``name`` is installed, also looking in ``extra_dirs`` (e.g. ``/usr/sbin``)."""
    return shutil.which(name, path=os.pathsep.join([_PATH, "/usr/sbin", "/sbin", *extra_dirs]))


def _kill_group(pgid: int) -> None:
    """Kill a process group this module started (its leader's pid is the group id)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, 9)
