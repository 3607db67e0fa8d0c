"""A throwaway PostgreSQL cluster for tests and benchmarks (Debian's ``postgresql`` package).

``initdb`` + ``pg_ctl`` in a fresh directory under /tmp, listening on a Unix socket in that
directory and on 127.0.0.1 (a free port from ``ROLLOUT_PG_PORT_BASE``, default 15400; each
pytest-xdist worker searches its own range) and nowhere else. ``initdb`` refuses to run as
root, so under root the cluster runs as the unprivileged ``postgres`` user (created by the
Debian package; created here if missing). Local socket connections are trusted; TCP ones need
the superuser's password (scram-sha-256), so both libpq password paths are exercised.

    with Cluster.started() as pg:
        uri = pg.create_database()      # postgresql://rollout@/t_ab12...?host=/tmp/...
        uri = pg.create_schema()        # a fresh schema (search_path) in one database
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import LabError

BIN_DIRS = tuple(f"/usr/lib/postgresql/{v}/bin" for v in (17, 16, 15))
RUN_AS = "postgres"  # the unprivileged user a root test run starts the server as
SUPERUSER = "rollout"
PORTS_PER_WORKER = 20


def bin_dir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live; LabError naming the package if nowhere."""
    for candidate in (os.environ.get("ROLLOUT_PG_BIN", ""), *BIN_DIRS):
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise LabError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found",
        hint="install Debian's postgresql package (scripts/bootstrap.sh does),"
        " or set ROLLOUT_PG_BIN",
    )


def _free_port() -> int:
    start = int(os.environ.get("ROLLOUT_PG_PORT_BASE") or 15400)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        start += int(worker[2:]) * PORTS_PER_WORKER
    for port in range(start, start + PORTS_PER_WORKER):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise LabError(f"no free port for PostgreSQL in {start}..{start + PORTS_PER_WORKER - 1}")


def _service_user() -> pwd.struct_passwd | None:
    """The user to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
            check=False, capture_output=True,
        )  # fmt: skip  # idempotent: a concurrent creator wins, getpwnam below decides
        return pwd.getpwnam(RUN_AS)


@dataclass
class Cluster:
    """One running throwaway cluster."""

    root: Path
    port: int
    password: str
    user: pwd.struct_passwd | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", self.user.pw_name, "--"] if self.user else []
        done = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=120, cwd=self.root
        )
        if done.returncode != 0:
            raise LabError(f"{Path(argv[0]).name} failed: {done.stderr.strip()[-2000:]}")
        return done

    @classmethod
    def start(cls) -> Cluster:
        """initdb a fresh cluster under /tmp and start it; stop it with :meth:`stop`."""
        binaries = bin_dir()
        root = Path(tempfile.mkdtemp(prefix="rollout-pg-", dir="/tmp"))
        user = _service_user()
        cluster = cls(root, _free_port(), secrets.token_hex(12), user)
        (root / "sock").mkdir()
        pwfile = root / "pw"
        pwfile.write_text(cluster.password + "\n")
        if user is not None:
            for path in (root, root / "sock", pwfile):
                os.chown(path, user.pw_uid, user.pw_gid)
        root.chmod(0o755)  # the socket directory must be reachable by clients
        try:
            cluster._run(
                str(binaries / "initdb"), "-D", str(cluster.data), "-U", SUPERUSER,
                f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                "--no-sync", "-E", "UTF8", "--locale=C",
            )  # fmt: skip
            pwfile.unlink()
            cluster._run(
                str(binaries / "pg_ctl"), "-D", str(cluster.data), "-l", str(root / "log"),
                "-w", "-t", "60", "-o",
                f"-c listen_addresses=127.0.0.1 -c port={cluster.port}"
                f" -c unix_socket_directories={cluster.socket_dir} -c fsync=on"
                " -c max_connections=200 -c shared_buffers=32MB",
                "start",
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cluster

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        try:
            self._run(str(bin_dir() / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        except LabError:
            pass  # already stopped (a test stopped it); the directory goes anyway
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def pg_ctl(self, action: str, *args: str) -> None:
        """Run ``pg_ctl ACTION`` on this cluster (``stop``, ``start``, ``restart``)."""
        extra: tuple[str, ...] = ()
        if action in ("start", "restart"):
            extra = (
                "-l", str(self.root / "log"), "-o",
                f"-c listen_addresses=127.0.0.1 -c port={self.port}"
                f" -c unix_socket_directories={self.socket_dir} -c max_connections=200",
            )  # fmt: skip
        self._run(str(bin_dir() / "pg_ctl"), "-D", str(self.data), "-w", *extra, *args, action)

    @classmethod
    @contextmanager
    def started(cls) -> Iterator[Cluster]:
        cluster = cls.start()
        try:
            yield cluster
        finally:
            cluster.stop()

    def socket_uri(self, dbname: str) -> str:
        """A libpq URI over the Unix socket (trusted: no password)."""
        return f"postgresql://{SUPERUSER}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def tcp_uri(self, dbname: str, *, password: bool = True) -> str:
        """A libpq URI over 127.0.0.1; with ``password`` it carries the password itself."""
        secret = f":{self.password}" if password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{dbname}"

    def create_schema(self, name: str | None = None) -> str:
        """A fresh, empty schema in the ``postgres`` database; return a socket URI whose
        ``search_path`` is that schema (instant, unlike CREATE DATABASE: one per test)."""
        import psycopg

        name = name or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.socket_uri("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.socket_uri('postgres')}&options=-csearch_path%3D{name}"

    def create_database(self, name: str | None = None) -> str:
        """CREATE DATABASE (fresh name unless given); return its socket URI."""
        import psycopg

        name = name or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.socket_uri("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.socket_uri(name)
