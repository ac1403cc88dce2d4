"""dbt docs as people open them: `vedfin docs` serves them, headless Chromium reads them.

Built on the test scenario in a database of its own, served on a free port, opened in
Chromium: the marts are in the project tree, a mart's page shows its metric definitions,
and the same definitions are PostgreSQL comments on the mart tables (persist_docs), where
BI tools that read comments find them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import yaml

from tests.browser import ARTIFACTS, require_chromium, wait_for_text
from tests.browser import browser as browser  # noqa: F401  (the fixture)
from tests.conftest import ROOT, built_database
from tests.redis_server import free_port
from vedfin.config import Settings

pytestmark = pytest.mark.ui
END = "2026-11-20"
MART_YML = ROOT / "dbt_project" / "models" / "marts" / "engagement" / "_engagement__models.yml"


def _definition(model: str, column: str) -> str:
    models = yaml.safe_load(MART_YML.read_text())["models"]
    node = next(m for m in models if m["name"] == model)
    return " ".join(next(c for c in node["columns"] if c["name"] == column)["description"].split())


@pytest.fixture(scope="module")
def docs_db(settings: Settings) -> str:
    return built_database(settings, "vedfin_docs", end_date=END)


@pytest.fixture(scope="module")
def served(docs_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    port = free_port()
    log = open(tmp_path_factory.mktemp("docs") / "docs.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "vedfin_cli", "docs", "--port", str(port), "--as-of", END],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": docs_db, "DBT_TARGET": "test"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/catalog.json", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, f"vedfin docs exited {proc.returncode}; see {log.name}"
            assert time.time() < deadline, f"vedfin docs did not answer; see {log.name}"
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
        log.close()


def test_docs_show_the_marts_and_their_metric_definitions(
    served: str, browser: Any, marts: tuple[str, ...]
) -> None:
    browser.get(f"{served}/#!/overview")
    for mart in marts:
        wait_for_text(browser, mart)
    browser.get(f"{served}/#!/model/model.vedfin.fct_daily_active_users")
    wait_for_text(browser, "stickiness")
    stickiness = _definition("fct_daily_active_users", "stickiness")
    wait_for_text(browser, stickiness)
    time.sleep(1)
    browser.save_screenshot(str(ARTIFACTS / "docs_fct_daily_active_users.png"))
    browser.get(f"{served}/#!/model/model.vedfin.fct_leaderboard")
    wait_for_text(browser, "Referenced By")  # lineage: its exposures read it
    wait_for_text(browser, "leaderboard")


def test_marts_carry_their_definitions_as_postgres_comments(
    docs_db: str, marts: tuple[str, ...]
) -> None:
    with psycopg.connect(docs_db) as conn:
        for mart in marts:
            comment = conn.execute(
                "select obj_description(%s::regclass, 'pg_class')", (f"marts.{mart}",)
            ).fetchone()
            assert comment is not None and comment[0], mart
        row = conn.execute(
            """select col_description(a.attrelid, a.attnum) from pg_attribute a
               where a.attrelid = 'marts.fct_daily_active_users'::regclass
                 and a.attname = 'stickiness'"""
        ).fetchone()
    assert row is not None and " ".join(row[0].split()) == _definition(
        "fct_daily_active_users", "stickiness"
    )
