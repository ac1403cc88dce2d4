"""One resolution of where PostgreSQL, Redis and Dagster live, for every process.

``DATABASE_URL`` and ``REDIS_URL`` win when set. Otherwise the project's own
embedded servers are started (or reused) under the state folder. dbt, Dagster,
psql, the generator and the tests all receive the same answer through
:func:`env_exports`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from vedfin.environment import TARGETS, environment
from vedfin.errors import VedfinError
from vedfin.services import (
    DAGSTER_DATABASE,
    PG_DATABASE,
    EmbeddedPostgres,
    EmbeddedRedis,
    state_lock,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DBT_PROFILES_DIR = PROJECT_ROOT / "profiles"
__all__ = ["TARGETS", "Settings", "resolve", "env_exports", "apply_env", "with_database"]


def state_dir() -> Path:
    return (environment().vedfin_state_dir or PROJECT_ROOT / ".vedfin").resolve()


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    dagster_home: Path
    dagster_pg_url: str
    target: str
    embedded_postgres: bool
    embedded_redis: bool

    @property
    def pg_params(self) -> dict[str, str]:
        return {k: str(v) for k, v in conninfo_to_dict(self.database_url).items()}


def ensure_databases(admin_url: str, names: list[str]) -> None:
    """Create each database that is missing on the server of ``admin_url``."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            exists = conn.execute(
                "select 1 from pg_database where datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))


def database_on(server_url: str, name: str) -> str:
    """The URL of database ``name`` on the same server, created when missing."""
    ensure_databases(server_url, [name])
    return with_database(server_url, name)


def with_database(url: str, dbname: str) -> str:
    """The same server and credentials, another database."""
    params = conninfo_to_dict(url)
    params["dbname"] = dbname
    conninfo = make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})
    return conninfo_to_url(conninfo)


def conninfo_to_url(conninfo: str) -> str:
    from urllib.parse import quote

    p = conninfo_to_dict(conninfo)
    auth = quote(str(p.get("user", "")), safe="")
    if p.get("password"):
        auth += ":" + quote(str(p["password"]), safe="")
    host = str(p.get("host", "127.0.0.1"))
    port = p.get("port")
    netloc = f"{auth}@{host}" if auth else host
    if port:
        netloc += f":{port}"
    extras = {k: v for k, v in p.items() if k not in {"user", "password", "host", "port", "dbname"}}
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in extras.items())
    return f"postgresql://{netloc}/{p.get('dbname', '')}" + (f"?{query}" if query else "")


def _write_dagster_yaml(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    template = (Path(__file__).parent / "templates" / "dagster.yaml").read_text()
    target = home / "dagster.yaml"
    if not target.exists() or target.read_text() != template:
        target.write_text(template)


def sqlalchemy_psycopg2_url(url: str) -> str:
    """Dagster's Postgres storage goes through SQLAlchemy, whose 2.1 default driver for
    ``postgresql://`` is psycopg 3; dagster-postgres needs psycopg2 (its ``NOTIFY`` uses
    client-side parameters), so name the driver explicitly."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def resolve(start: bool = True) -> Settings:
    """Resolve (and, with ``start``, bring up) the servers this process should use."""
    env = environment()
    target = env.dbt_target
    db_url = env.database_url
    redis_url = env.redis_url
    embedded_pg = not db_url
    embedded_redis = not redis_url
    state = (env.vedfin_state_dir or PROJECT_ROOT / ".vedfin").resolve()
    if embedded_pg or embedded_redis:
        with state_lock(state):
            if embedded_pg:
                pg = EmbeddedPostgres(state)
                if start:
                    port = pg.ensure_running()
                    ensure_databases(pg.url(port, "postgres"), [PG_DATABASE, DAGSTER_DATABASE])
                else:
                    info = pg.postmaster()
                    if info is None:
                        raise VedfinError("the embedded PostgreSQL is not running: `vedfin up`")
                    port = info[1]
                db_url = pg.url(port)
            if embedded_redis:
                rd = EmbeddedRedis(state)
                if start:
                    rport = rd.ensure_running()
                else:
                    rinfo = rd.running()
                    if rinfo is None:
                        raise VedfinError("the embedded Redis is not running: `vedfin up`")
                    rport = rinfo[1]
                redis_url = rd.url(rport)
    dagster_pg_url = sqlalchemy_psycopg2_url(
        env.dagster_pg_url or (with_database(db_url, DAGSTER_DATABASE) if embedded_pg else db_url)
    )
    dagster_home = env.dagster_home or state / "dagster_home"
    if env.dagster_home is None:
        _write_dagster_yaml(dagster_home)
    return Settings(
        database_url=db_url,
        redis_url=redis_url,
        dagster_home=dagster_home,
        dagster_pg_url=dagster_pg_url,
        target=target,
        embedded_postgres=embedded_pg,
        embedded_redis=embedded_redis,
    )


def env_exports(settings: Settings) -> dict[str, str]:
    """The environment that dbt (profiles), Dagster, psql and the tests read."""
    p = settings.pg_params
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "DAGSTER_HOME": str(settings.dagster_home),
        "DAGSTER_PG_URL": settings.dagster_pg_url,
        "PGHOST": p.get("host", "127.0.0.1"),
        "PGPORT": p.get("port", "5432"),
        "PGUSER": p.get("user", os.environ.get("USER", "postgres")),
        "PGDATABASE": p.get("dbname", "postgres"),
        "DBT_PROFILES_DIR": str(DBT_PROFILES_DIR),
        "DBT_PROJECT_DIR": str(DBT_PROJECT_DIR),
        "DBT_TARGET": settings.target,
    }
    if p.get("password"):
        env["PGPASSWORD"] = p["password"]
    if p.get("sslmode"):
        env["PGSSLMODE"] = p["sslmode"]
    return env


def apply_env(settings: Settings) -> dict[str, str]:
    """Export the resolved settings into this process (for dbt and Dagster children)."""
    env = env_exports(settings)
    os.environ.update(env)
    return env
