"""Fixtures of the browser tests: one registry with the web UI on (`-ui`) and the RBAC
manifests of tests/browser/access.py, the content of tests/browser/content.py pushed into
it, and one headless Chromium, all for the whole session (Chromium is the heavy part: it
starts once, and each test only loads pages in it).

Tests that change content (deletions) work on repositories of their own (`scratch/...`), so
the order of the tests does not matter. Each test starts as a first visit: no session, no
theme choice, light system theme, desktop size; its console is checked when it ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver

from tests.browser.access import ADMIN, write_cfgdir
from tests.browser.content import Content, push_content
from tests.browser.page import CHROMEDRIVER, CHROMIUM, Page, browser_log, start_chromium
from tests.clients.tools import require_binary
from tests.server import RunningRegistry, start

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where this run's files go: `SIMPLE_REGISTRY_TEST_OUTPUT`, else `test-output/` at the
    repository's root (git-ignored); the browser tests write under `ui/` in it."""
    root = os.environ.get("SIMPLE_REGISTRY_TEST_OUTPUT") or str(REPOSITORY_ROOT / "test-output")
    folder = Path(root) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    root = tmp_path_factory.mktemp("ui")
    cfgdir = write_cfgdir(root / "cfg")
    server = start(root / "data", "-ui", "-cfgdir", str(cfgdir), password=None)
    server.username, server.password = ADMIN.name, ADMIN.password
    yield server
    server.stop()


@pytest.fixture(scope="session")
def content(ui_server: RunningRegistry) -> Content:
    with ui_server.client() as admin:
        return push_content(admin)


@pytest.fixture
def admin_api(ui_server: RunningRegistry) -> Iterator[httpx.Client]:
    """The admin's own HTTP client, to check what the pages show against the API."""
    with ui_server.client() as http:
        yield http


@pytest.fixture(scope="session")
def chromium() -> Iterator[webdriver.Chrome]:
    """Skipped with the missing binary's name where Debian's chromium or chromium-driver is
    not installed (CI installs both, and fails on any skip)."""
    require_binary(CHROMIUM)
    require_binary(CHROMEDRIVER)
    driver = start_chromium()
    yield driver
    driver.quit()


@pytest.fixture
def page(
    chromium: webdriver.Chrome, ui_server: RunningRegistry, content: Content
) -> Iterator[Page]:
    """The browser at a first visit of the registry; fails the test on console errors or
    CSP violations it caused."""
    current = Page(chromium, ui_server.url)
    current.set_theme("light")
    current.set_size("desktop")
    browser_log(chromium)  # what an earlier test left is that test's business
    yield current
    problems = current.problems()
    current.forget()
    assert not problems, "console errors or CSP violations:\n" + "\n".join(problems)
