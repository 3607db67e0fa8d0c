"""Converging the lab to its planned state: what ``up`` does under the lab's lock.

:func:`planned_state` keeps the recorded hosts as they are and appends new ones;
:func:`converge` checks every port the missing processes need, writes each host's directory
(host key, sshd config, release copy, restart script), then starts epmd, the sshds and the
nodes that are not running, recording each pid in :class:`Progress` as it goes, so a failure
still records what it started.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from . import node, procs, release, sshd
from .account import LabUser
from .errors import LabError
from .inventory import write_atomically
from .model import LabPaths, node_name
from .render import render
from .state import HostRecord, LabState

Log = Callable[[str], None]

#: How long a node may take from ``daemon`` until its console answers.
BOOT_DEADLINE = 30.0


def planned_state(
    st: LabState | None,
    hosts: int,
    user: LabUser,
    inventory: Path,
    base_port: int,
    with_release: bool,
) -> LabState:
    """The state to converge to: recorded hosts kept as they are, new ones appended."""
    if st is None:
        st = LabState(user=user.name, inventory=inventory, epmd_port=base_port, epmd=None, hosts=())
    st = replace(st, inventory=inventory)
    for i in range(1, hosts + 1):
        name = f"h{i}"
        if st.host(name) is None:
            st = st.with_host(HostRecord(name, base_port + i, with_release, node_name(name)))
    return st


@dataclass
class Progress:
    """The state as far as ``up`` got, so that a failure still records what it started."""

    state: LabState


def converge(root: Path, progress: Progress, user: LabUser, log: Log) -> None:
    """Start whatever of the planned state is not running, recording each pid as it goes."""
    st = progress.state
    paths = LabPaths(root)
    sshd.keygen(paths.client_key, "rollout-lab-client")
    paths.client_key.chmod(0o600)
    write_atomically(paths.authorized_keys, sshd.public_key(paths.client_key) + "\n")
    (root / "hosts").mkdir(exist_ok=True)
    (root / "hosts").chmod(0o755)

    # What already runs is kept; check every port the rest needs before starting anything.
    records = [_refresh(root, r, user) for r in st.hosts]
    epmd_ref = st.epmd if st.epmd is not None and procs.is_running(st.epmd) else None
    needs_release = any(r.with_release for r in records)
    taken = [
        f"127.0.0.1:{r.port} ({r.name})"
        for r in records
        if r.sshd is None and not procs.port_free(r.port)
    ]
    if needs_release and epmd_ref is None and not procs.port_free(st.epmd_port):
        taken.append(f"127.0.0.1:{st.epmd_port} (the lab's epmd)")
    if taken:
        raise LabError(
            f"ports taken by something that is not this lab: {', '.join(taken)}",
            hint="stop what listens there (`ss -ltnp`), or pick another base port or "
            "ROLLOUT_LAB_DIR (`invoke lab.down --purge` forgets this lab's ports)",
        )
    st = progress.state = replace(st, hosts=tuple(records), epmd=epmd_ref)

    build: tuple[Path, str] | None = release.build(log) if needs_release else None
    for record in records:
        _prepare(paths, record, user, build, st.epmd_port, log)

    if needs_release and epmd_ref is None:
        # Nodes that outlived their epmd are registered nowhere and unreachable: restart them.
        for record in records:
            if record.beam is not None:
                log(f"{record.name}: the lab's epmd is gone; restarting node {record.node}")
                node.stop(paths.host(record.name), record.node, record.beam, user)
                st = progress.state = st.with_host(replace(record, beam=None))
        records = list(st.hosts)
        epmd_ref = node.start_epmd(user, st.epmd_port, paths.epmd_log)
        st = progress.state = replace(st, epmd=epmd_ref)
        log(f"epmd started on 127.0.0.1:{st.epmd_port} (pid {epmd_ref.pid})")

    for record in records:
        if record.sshd is None:
            ref = sshd.start(paths.host(record.name), record.port, user)
            st = progress.state = st.with_host(replace(record, sshd=ref))
            log(f"{record.name}: sshd on 127.0.0.1:{record.port} (pid {ref.pid})")
        else:
            log(f"{record.name}: sshd already running (pid {record.sshd.pid})")

    to_boot = [r for r in st.hosts if r.with_release and r.beam is None]
    for r in st.hosts:
        if r.beam is not None:
            log(f"{r.name}: node {r.node} already running (pid {r.beam.pid})")
    failures: list[str] = []
    if to_boot:
        with ThreadPoolExecutor(max_workers=min(16, len(to_boot))) as pool:
            futures = {
                r.name: pool.submit(
                    node.start,
                    paths.host(r.name),
                    r.node,
                    user,
                    epmd_port=st.epmd_port,
                    deadline=BOOT_DEADLINE,
                )
                for r in to_boot
            }
            for r in to_boot:
                try:
                    ref = futures[r.name].result()
                except LabError as exc:
                    failures.append(f"{r.name}: {exc.message}")
                    continue
                current = st.host(r.name) or r
                st = progress.state = st.with_host(replace(current, beam=ref))
                log(f"{r.name}: node {r.node} up (pid {ref.pid})")
    if failures:
        raise LabError(
            "some nodes did not come up:\n" + "\n".join(failures),
            hint="read the logs named above, then run `invoke lab.up` again",
        )


def _refresh(root: Path, record: HostRecord, user: LabUser) -> HostRecord:
    """``record`` with its sshd and node set to what really runs now (None if not)."""
    hp = LabPaths(root).host(record.name)
    sshd_ref = sshd.running(hp, record.sshd, user)
    beam_ref = node.running(hp, record.node, record.beam, user) if record.with_release else None
    return replace(record, sshd=sshd_ref, beam=beam_ref)


def _prepare(
    paths: LabPaths,
    record: HostRecord,
    user: LabUser,
    build: tuple[Path, str] | None,
    epmd_port: int,
    log: Log,
) -> None:
    """Write one host's directory: host key, sshd config, release copy, restart script."""
    hp = paths.host(record.name)
    hp.root.mkdir(parents=True, exist_ok=True)
    hp.root.chmod(0o755)
    sshd.keygen(hp.host_key, f"rollout-lab-{record.name}")
    for path in (hp.root, hp.host_key, hp.host_key.with_suffix(".pub")):
        _give(path, user)
    hp.host_key.chmod(0o600)
    changed = sshd.write_config(
        hp, name=record.name, port=record.port, user=user, authorized_keys=paths.authorized_keys
    )
    if changed and record.sshd is not None:
        log(f"{record.name}: sshd_config changed; reloading sshd (pid {record.sshd.pid})")
        sshd.reload(record.sshd, record.port)
    if not record.with_release:
        release.install_stub(hp, user)
        return
    assert build is not None
    build_dir, digest = build
    if record.beam is None and release.installed_build(hp) != digest:
        log(f"{record.name}: installing release build {digest}")
        release.install(build_dir, digest, hp, user, node=record.node, epmd_port=epmd_port)
    elif record.beam is not None and release.installed_build(hp) != digest:
        log(
            f"{record.name}: runs an older build; restart it (`invoke lab.down`, `lab.up`) "
            "to pick up the new one"
        )
    hp.restart_script.write_text(
        render(
            "restart.sh.j2",
            name=record.name,
            user=user.name,
            release_bin=hp.release_bin,
            pid_file=hp.node_pid,
            log_dir=hp.log_dir,
            deadline=int(BOOT_DEADLINE),
            name_marker=node.markers(hp, record.node)[0],
            root_marker=node.markers(hp, record.node)[1],
        )
    )
    hp.restart_script.chmod(0o755)


def _give(path: Path, user: LabUser) -> None:
    if os.geteuid() == 0:
        os.chown(path, user.uid, user.gid)
