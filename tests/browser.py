"""A real headless browser for the dashboard's tests: Debian's chromium and chromium-driver through
Selenium. Where they are missing the tests are skipped, except under CI, where .ci/run installs
them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1400, 1000


def require_browser() -> None:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        problem = f"no headless browser: {', '.join(missing)} missing"
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def start_browser(headers: dict[str, str] | None = None):
    """A headless Chromium; `headers` go with every request it makes (pages, fetch() calls)."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    if headers:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
    return driver


def wait_until(condition, timeout: float = 20, what: str = "the condition"):
    """`condition()`'s first true value, asked every 0.1 s (a lookup that raises counts as false)."""
    deadline = time.monotonic() + timeout
    error = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # noqa: BLE001 - an element not there yet, or replaced meanwhile
            error, value = exc, None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s" + (f" (last error: {error})" if error else ""))


def screenshot(driver, path: Path) -> Path:
    """The whole page, however long, as a PNG."""
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, max(height, HEIGHT))
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.set_window_size(WIDTH, HEIGHT)
    return path


def script_errors(driver) -> list[str]:
    """What the page's scripts threw (failed requests, such as an expected 401, left out)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("source") == "javascript"]
