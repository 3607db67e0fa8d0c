"""Bringing the lab up and down, and reading it back.

``up`` is idempotent: it installs what is missing (packages, the lab user, the release
build), leaves running hosts alone, (re)starts the missing ones and adds new ones (the
starting itself is :mod:`rollout_lab.converge`). ``down`` stops exactly the processes the lab
started, by pid, after checking each is still the very process it started. Both hold the
lab's lock, so they never race each other. ``status`` probes every host in parallel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from . import node, procs, release, sshd, state
from .account import LabUser, can_traverse, ensure_user
from .converge import Log, Progress, converge, planned_state
from .errors import LabError
from .inventory import inventory_text, is_generated, known_hosts_text, write_atomically
from .model import HostPaths, HostStatus, Lab, LabHost, LabPaths
from .packages import ensure_packages
from .state import HostRecord, LabState

#: How long ``status`` waits for a console.
CONSOLE_DEADLINE = 10.0


def default_root() -> Path:
    """``$ROLLOUT_LAB_DIR`` if set, else ``<repo>/.lab``."""
    env = os.environ.get("ROLLOUT_LAB_DIR")
    return Path(env).absolute() if env else release.REPO / ".lab"


def default_inventory() -> Path:
    """``<repo>/inventory/lab.yml``."""
    return release.REPO / "inventory" / "lab.yml"


def _root(root: Path | None) -> Path:
    return (root or default_root()).absolute()


def _host(root: Path, record: HostRecord) -> LabHost:
    paths = LabPaths(root).host(record.name)
    return LabHost(
        name=record.name,
        port=record.port,
        root=paths.root,
        release_bin=paths.release_bin,
        node=record.node if record.with_release else "",
        restart_script=paths.restart_script,
        with_release=record.with_release,
    )


def _lab(root: Path, st: LabState) -> Lab:
    paths = LabPaths(root)
    return Lab(
        root=root,
        user=st.user,
        key_file=paths.client_key,
        known_hosts=paths.known_hosts,
        inventory=st.inventory,
        hosts=tuple(_host(root, r) for r in st.hosts),
    )


def load(root: Path | None = None) -> Lab:
    """The lab recorded under ``root``, without changing anything."""
    root = _root(root)
    st = state.read(root)
    if st is None:
        raise LabError(f"no lab at {root}", hint="run `invoke lab.up` (or set ROLLOUT_LAB_DIR)")
    return _lab(root, st)


# -- up --------------------------------------------------------------------------------------


def up(
    hosts: int = 3,
    *,
    root: Path | None = None,
    inventory: Path | None = None,
    base_port: int = 2200,
    log: Log = print,
    with_release: bool = True,
    user: str | None = None,
) -> Lab:
    """Bring up (or complete) a lab of ``hosts`` hosts and return it.

    Host ``hN`` listens on ``base_port + N``; the lab's epmd on ``base_port``. With
    ``with_release=False`` new hosts are SSH-only (``release_bin`` is a stub script).
    """
    if hosts < 1:
        raise LabError(f"a lab needs at least one host, not {hosts}", hint="pass --hosts 1 or more")
    root = _root(root)
    inventory = (inventory or default_inventory()).absolute()
    ensure_packages(log)
    lab_user = ensure_user(user)
    if not root.exists():
        root.mkdir(parents=True)
        root.chmod(0o755)
    if not can_traverse(lab_user, root):
        raise LabError(
            f"the lab user {lab_user.name!r} cannot reach {root} (a parent directory is not "
            "searchable by others)",
            hint="set ROLLOUT_LAB_DIR to a directory it can reach, e.g. "
            "ROLLOUT_LAB_DIR=/tmp/rollout-lab",
        )
    with state.locked(root):
        st = planned_state(state.read(root), hosts, lab_user, inventory, base_port, with_release)
        if st.user != lab_user.name:
            raise LabError(
                f"the lab at {root} belongs to user {st.user!r}",
                hint="run `invoke lab.down --purge` first, or keep that user",
            )
        started = time.monotonic()
        progress = Progress(st)
        try:
            converge(root, progress, lab_user, log)
        finally:
            state.write(root, progress.state)
        st = progress.state
        lab = _lab(root, st)
        paths = LabPaths(root)
        keys = {h.name: sshd.public_key(paths.host(h.name).host_key) for h in lab.hosts}
        write_atomically(paths.known_hosts, known_hosts_text(lab, keys))
        write_atomically(inventory, inventory_text(lab))
    log(
        f"lab up: {len(lab.hosts)} hosts in {time.monotonic() - started:.1f}s; "
        f"inventory {inventory}"
    )
    return lab


# -- down ------------------------------------------------------------------------------------


def down(root: Path | None = None, *, log: Log = print, purge: bool = False) -> None:
    """Stop every process the lab started (nodes, sshds, epmd); with ``purge`` delete its files.

    Idempotent: a lab that is already down, or absent, is fine.
    """
    root = _root(root)
    if not root.exists():
        log(f"no lab at {root}")
        return
    leftovers: list[str] = []
    inventory: Path | None = None
    with state.locked(root):
        st = state.read(root)
        if st is None:
            log(f"no lab state in {root}; nothing to stop")
        else:
            inventory = st.inventory
            st, leftovers = _stop_all(root, st, log)
            state.write(root, st)
    if leftovers:
        raise LabError(
            "could not stop: " + ", ".join(leftovers),
            hint="stop them by pid by hand, then run `invoke lab.down` again",
        )
    if purge:
        shutil.rmtree(root, ignore_errors=True)
        if inventory is not None and is_generated(inventory, LabPaths(root).client_key):
            inventory.unlink(missing_ok=True)
        log(f"removed {root}")


def _stop_all(root: Path, st: LabState, log: Log) -> tuple[LabState, list[str]]:
    """Stop nodes, then sshds, then epmd; return the cleared state and what would not stop."""
    paths = LabPaths(root)
    user = LabUser.lookup(st.user)
    uid = user.uid if user else None
    leftovers: list[str] = []

    def stop_host(record: HostRecord) -> HostRecord:
        hp = paths.host(record.name)
        if record.with_release and user is not None:
            ref = node.running(hp, record.node, record.beam, user)
            if ref is not None:
                if node.stop(hp, record.node, ref, user):
                    log(f"{record.name}: node stopped (pid {ref.pid})")
                else:
                    leftovers.append(f"{record.name} node pid {ref.pid}")
        sshd_ref = _sshd_ref(hp, record, uid)
        if sshd_ref is not None:
            if procs.terminate(sshd_ref, 5.0):
                log(f"{record.name}: sshd stopped (pid {sshd_ref.pid})")
            else:
                leftovers.append(f"{record.name} sshd pid {sshd_ref.pid}")
        return replace(record, sshd=None, beam=None)

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(st.hosts)))) as pool:
        hosts = tuple(pool.map(stop_host, st.hosts))
    if st.epmd is not None and procs.is_running(st.epmd):
        if procs.terminate(st.epmd, 5.0):
            log(f"epmd stopped (pid {st.epmd.pid})")
        else:
            leftovers.append(f"epmd pid {st.epmd.pid}")
    return replace(st, hosts=hosts, epmd=None), leftovers


def _sshd_ref(hp: HostPaths, record: HostRecord, uid: int | None) -> procs.ProcessRef | None:
    if record.sshd is not None and procs.is_running(record.sshd):
        return record.sshd
    pid = procs.read_pid_file(hp.sshd_pid)
    return procs.identify(pid, sshd.markers(hp), uid) if pid else None


# -- status ----------------------------------------------------------------------------------


def status(root: Path | None = None) -> list[HostStatus]:
    """How every host of the lab is doing: sshd, port, node and console (in parallel)."""
    root = _root(root)
    st = state.read(root)
    if st is None:
        raise LabError(f"no lab at {root}", hint="run `invoke lab.up` (or set ROLLOUT_LAB_DIR)")
    user = LabUser.lookup(st.user)
    if user is None:
        raise LabError(f"the lab user {st.user!r} does not exist", hint="run `invoke lab.up`")
    paths = LabPaths(root)
    epmd_up = st.epmd is not None and procs.is_running(st.epmd)

    def one(record: HostRecord) -> HostStatus:
        hp = paths.host(record.name)
        sshd_ref = sshd.running(hp, record.sshd, user)
        beam = node.running(hp, record.node, record.beam, user) if record.with_release else None
        console_ok, seconds, detail = False, None, ""
        if not record.with_release:
            detail = "SSH-only host"
        elif beam is None:
            detail = "node not running"
        elif not epmd_up:
            detail = "the lab's epmd is not running; run `invoke lab.up`"
        else:
            begin = time.monotonic()
            try:
                answer = node.rpc(hp, user, "IO.puts(:ok)", timeout=CONSOLE_DEADLINE)
            except subprocess.TimeoutExpired:
                detail = f"console did not answer within {CONSOLE_DEADLINE:.0f}s"
            else:
                seconds = time.monotonic() - begin
                console_ok = answer.returncode == 0 and answer.stdout.strip() == "ok"
                if not console_ok:
                    detail = (answer.stderr.strip().splitlines() or ["no answer"])[-1]
        return HostStatus(
            name=record.name,
            port=record.port,
            with_release=record.with_release,
            sshd_pid=sshd_ref.pid if sshd_ref else None,
            sshd_alive=sshd_ref is not None,
            port_open=procs.port_accepting(record.port),
            node_pid=beam.pid if beam else None,
            node_alive=beam is not None,
            console_ok=console_ok,
            console_seconds=seconds,
            detail=detail,
        )

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(st.hosts)))) as pool:
        return list(pool.map(one, st.hosts))
