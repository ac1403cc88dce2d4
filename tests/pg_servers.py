"""The PostgreSQL servers the dbt tests run on: the resolved one and a throwaway 15.

The project supports PostgreSQL 15 to 18. The dbt suite runs on the server the project
resolves (the embedded 18 by default) and on a PostgreSQL 15 cluster that the tests
create in a temporary folder from Debian's ``postgresql-15`` binaries (``make
test-tools`` installs them when it may), started on a free port and removed afterwards.
As root, the cluster runs as the unprivileged ``postgres`` user (PostgreSQL refuses to
run as root).

``TEST_DATABASE_URLS`` (comma-separated admin URLs, each able to create databases)
replaces the throwaway 15 with servers of your own. When no 15 can be had, its tests are
skipped with the reason, or fail under ``CI=true``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg

PG15_BINDIRS = (
    os.environ.get("VEDFIN_TEST_PG15_BINDIR", ""),
    "/usr/lib/postgresql/15/bin",
    "/usr/pgsql-15/bin",
    "/opt/homebrew/opt/postgresql@15/bin",
)


@dataclass
class Server:
    """A PostgreSQL server a test may create databases on."""

    label: str
    admin_url: str
    stop: Callable[[], None] | None = None
    halt: Callable[[], None] | None = None  # stop the server now (immediate), data kept
    restart: Callable[[], None] | None = None  # start it again on the same port and data

    def version(self) -> str:
        with psycopg.connect(self.admin_url) as conn:
            row = conn.execute("show server_version").fetchone()
        return str(row[0]) if row else "?"

    def major(self) -> int:
        with psycopg.connect(self.admin_url) as conn:
            return conn.info.server_version // 10000


def pg15_bindir() -> Path | None:
    for candidate in PG15_BINDIRS:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as(user: str | None) -> dict[str, object]:
    """subprocess arguments that run a command as ``user`` (None: as ourselves)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def start_throwaway_cluster(bindir: Path) -> Server:
    """initdb + pg_ctl start of a new cluster in a temporary folder; Server.stop removes it."""
    root = Path(tempfile.mkdtemp(prefix="vedfin-pg15-"))
    data = root / "data"
    user: str | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
            except KeyError:
                continue
            user = name
            break
        if user is None:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError("running as root and no unprivileged user (postgres, nobody)")
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        root.chmod(0o700)
    as_user = _run_as(user)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    init = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        **as_user,  # type: ignore[arg-type]
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr[-1500:]}")
    port = _free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
    )

    def pg_ctl_start() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log")]
            + ["-w", "-t", "60", "start"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            **as_user,  # type: ignore[arg-type]
        )

    def halt() -> None:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
            check=True,
            **as_user,  # type: ignore[arg-type]
        )

    def restart() -> None:
        done = pg_ctl_start()
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr[-800:]}")

    start = pg_ctl_start()
    if start.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"pg_ctl start failed: {start.stderr[-800:]} {log[-1500:]}")

    def stop() -> None:
        subprocess.run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            env=env,
            check=False,
            **as_user,  # type: ignore[arg-type]
        )
        shutil.rmtree(root, ignore_errors=True)

    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 30
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                stop()
                raise
            time.sleep(0.2)
    return Server("pg15-throwaway", url, stop, halt, restart)
