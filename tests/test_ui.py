"""The Dagster UI as a new user meets it: `make ui`, headless Chromium, materialize.

Starts `make ui` (dagster dev: webserver + daemon) on fresh databases in its own process
group, opens the catalog and the lineage in headless Chromium (Debian `chromium` and
`chromium-driver`, installed by `make test` where apt is available), checks that every
asset is listed, clicks "Materialize all" on `full_pipeline` and waits for the run to
succeed. Screenshots go to `tests/artifacts/` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from tests.browser import ARTIFACTS, require_chromium, wait_for_text
from tests.browser import browser as browser  # noqa: F401  (the fixture)
from tests.conftest import ROOT, isolated_platform
from tests.redis_server import RedisServer, free_port
from vedfin.config import Settings, env_exports

pytestmark = pytest.mark.ui


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def ui(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_chromium()
    redis_server = RedisServer().start()
    home = tmp_path_factory.mktemp("dagster_home_ui")
    scoped = isolated_platform(settings, "vedfin_ui", redis_server.url, home)
    env = {**os.environ, **env_exports(scoped), "LEADERBOARD_PREFIX": "ui:"}
    port = free_port()
    log = open(tmp_path_factory.mktemp("ui_log") / "dagster_dev.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "ui", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: webserver, daemon, code server
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while not _up(f"{base}/server_info"):
            assert proc.poll() is None, f"make ui exited {proc.returncode}; see {log.name}"
            assert time.time() < deadline, f"dagster dev did not answer; see {log.name}"
            time.sleep(1)
        yield {"base": base, "home": home, "env": env, "url": scoped.database_url}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        redis_server.stop()


def test_asset_graph_shows_every_asset(ui: dict[str, Any], browser: Any) -> None:
    from urllib.parse import unquote

    from selenium.webdriver.common.by import By

    from orchestration.definitions import defs

    expected = {
        k.to_user_string() for k in defs.get_repository_def().asset_graph.get_all_asset_keys()
    }
    assert len(expected) >= 30
    browser.set_window_size(1600, 4600)  # the catalog renders only the rows in view
    browser.get(f"{ui['base']}/assets")
    wait_for_text(browser, "leaderboard_snapshot")
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "ui_catalog.png"))
    linked = {
        unquote(href.split("/assets/", 1)[1]).split("?")[0].rstrip("/")
        for a in browser.find_elements(By.TAG_NAME, "a")
        if (href := a.get_attribute("href") or "") and "/assets/" in href
    }
    assert sorted(expected - linked) == []
    browser.set_window_size(1600, 1000)
    browser.get(f"{ui['base']}/asset-groups")
    for group in ("raw", "staging", "intermediate", "marts", "serving"):
        wait_for_text(browser, group)
    time.sleep(1)
    browser.save_screenshot(str(ARTIFACTS / "ui_lineage.png"))


def test_materialize_full_pipeline_from_the_ui(
    ui: dict[str, Any], browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("DAGSTER_PG_URL", ui["env"]["DAGSTER_PG_URL"])  # dagster.yaml reads it
    browser.get(f"{ui['base']}/locations/orchestration.definitions/jobs/full_pipeline")
    wait_for_text(browser, "Materialize all")
    time.sleep(2)
    button = next(
        b for b in browser.find_elements(By.TAG_NAME, "button") if b.text == "Materialize all"
    )
    button.click()
    with dg.DagsterInstance.from_config(str(ui["home"])) as instance:
        deadline = time.time() + 420
        while True:
            runs = instance.get_run_records(dg.RunsFilter(job_name="full_pipeline"))
            status = runs[0].dagster_run.status if runs else None
            if status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE):
                break
            assert time.time() < deadline, f"the run did not finish (status {status})"
            time.sleep(2)
        run_id = runs[0].dagster_run.run_id
        assert status == dg.DagsterRunStatus.SUCCESS
    browser.get(f"{ui['base']}/runs/{run_id}")
    wait_for_text(browser, "Success")
    time.sleep(2)
    browser.save_screenshot(str(ARTIFACTS / "ui_run.png"))
