"""Headless Chromium for the tests that open a page (Debian `chromium` and `chromium-driver`,
installed by `make test` where apt-get is available). Without them a test is skipped with
the reason, except under CI=true, where it fails: a green CI means the page was opened."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, _must_not_skip

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = ROOT / "tests" / "artifacts"


def require_chromium() -> None:
    if Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists():
        return
    reason = (
        "Debian chromium and chromium-driver are not installed (make test installs them "
        "where apt-get is available)"
    )
    if _must_not_skip():
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1600,2000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(exist_ok=True)
    yield driver
    driver.quit()


def wait_for_text(driver: Any, text: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while text not in driver.page_source:
        assert time.time() < deadline, f"{text!r} never appeared on {driver.current_url}"
        time.sleep(0.5)
