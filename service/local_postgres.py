"""A throwaway Postgres server on loopback, for the Postgres test tier and the queue benchmark.

It runs the `postgresql` package's own binaries (`apt-get install postgresql`; `make system-deps`
installs it when run as root) on a data folder in a fresh temp folder. Postgres refuses to run as
root, so under root the server runs as the `postgres` system user that the package creates.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from service.child_processes import dying_with_parent
from service.local import free_port

SERVER_USER = "postgres"  # the system user of Debian's postgresql package, and the superuser's name
# Trust authentication is safe only because the server listens on loopback and lives for one run.
INITDB_OPTIONS = ["-U", SERVER_USER, "--auth=trust", "--no-sync", "--encoding=UTF8", "--no-locale"]


class PostgresUnavailable(RuntimeError):
    """No Postgres server could be started here; the message says why."""


@dataclass
class LocalPostgres:
    """A running server: superuser `postgres`, no password, TCP on 127.0.0.1:`port` only."""

    port: int
    process: subprocess.Popen[bytes]

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str = "template1") -> str:
        """Create `name` as a copy of `template`; returns its URL."""
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, closing any connection still open to it."""
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _execute(self, statement: str) -> None:
        # CREATE/DROP DATABASE cannot run inside a transaction: autocommit.
        address = f"host=127.0.0.1 port={self.port} user={SERVER_USER} dbname=postgres"
        with psycopg.connect(address, autocommit=True) as connection:
            connection.execute(statement.encode())


@contextmanager
def local_postgres(**server_settings: str) -> Iterator[LocalPostgres]:
    """Start a fresh server, yield it, stop it and delete its files.

    `server_settings` become `-c name=value` options, e.g. `fsync="off"` for tests, where a lost
    database costs nothing. Raises PostgresUnavailable when the binaries or the user are missing
    or the server does not start.
    """
    bin_dir = _bin_dir()
    as_user = _server_user()
    folder = Path(tempfile.mkdtemp(prefix="neuroplast-postgres-"))
    try:
        if as_user is not None:
            os.chown(folder, as_user.pw_uid, as_user.pw_gid)
        data = folder / "data"
        _run_as(as_user, [str(bin_dir / "initdb"), "-D", str(data), *INITDB_OPTIONS])
        port = free_port()
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": "",
            "max_connections": "200",  # tests and benchmarks open many short-lived pools
            **server_settings,
        }
        command = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
        command += [arg for name, value in options.items() for arg in ("-c", f"{name}={value}")]
        with (folder / "server.log").open("ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                user=as_user.pw_uid if as_user else None,
                group=as_user.pw_gid if as_user else None,
                preexec_fn=dying_with_parent(),  # a killed test run leaves no server behind
            )
        server = LocalPostgres(port, process)
        try:
            _wait_ready(server, folder / "server.log")
            yield server
        finally:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: SIGTERM would wait for clients
            process.wait(30)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _bin_dir() -> Path:
    """Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<major>/bin."""
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresUnavailable("initdb not found: install the postgresql package (make system-deps)")
    return Path(found[-1]).parent


def _server_user() -> pwd.struct_passwd | None:
    """The user the server runs as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        message = f"running as root and there is no '{SERVER_USER}' user to run Postgres as"
        raise PostgresUnavailable(message) from None


def _run_as(user: pwd.struct_passwd | None, command: list[str]) -> None:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        cwd="/",
    )
    if result.returncode != 0:
        raise PostgresUnavailable(f"{command[0]} failed: {result.stderr.strip()[-500:]}")


def _wait_ready(server: LocalPostgres, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    address = f"host=127.0.0.1 port={server.port} user={SERVER_USER} dbname=postgres connect_timeout=2"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = log.read_text(errors="replace").strip()[-500:]
            raise PostgresUnavailable(f"postgres exited with status {server.process.returncode}: {tail}")
        try:
            psycopg.connect(address).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise PostgresUnavailable(f"postgres did not accept connections within {timeout} s")
