"""Debian's headless Chromium driven by Selenium, and what the tests do with a page.

No browser is downloaded: the binary and the driver are Debian's `chromium` and
`chromium-driver` (scripts/test installs them). Every wait is WebDriverWait on something the
page shows (the DOM contract's `data-state="ready"`, an element, a URL); nothing sleeps.

Console errors and Content-Security-Policy violations fail the test that caused them: the
browser log is read after each test (a CSP violation is a SEVERE entry from the "security"
source), and a `securitypolicyviolation` listener, added to every document before its own
scripts run, records violations the log might word differently.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.access import Account

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Generous: the machine is small and shared. A wait that runs out is a failure, not a retry.
WAIT = 20.0
POLL = 0.05

DESKTOP = (1280, 900)
PHONE = (360, 800)
SIZES = {"desktop": DESKTOP, "phone": PHONE}
THEMES = ("light", "dark")
SESSION_KEY = "simple-registry.session"
THEME_KEY = "simple-registry.theme"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_RECORD_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', (event) => {
  (window.__cspViolations = window.__cspViolations || []).push(
    [event.violatedDirective, event.blockedURI, event.sourceFile, event.lineNumber].join(' '));
});
"""
# "Failed to load resource: the server responded with a status of 404 (Not Found)".
_NETWORK_URL = re.compile(r"^(\S+) .*Failed to load resource")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def start_chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root in CI, where the sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-extensions",
        f"--window-size={DESKTOP[0]},{DESKTOP[1]}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_VIOLATIONS})
    return driver


@dataclass
class Page:
    """The session's browser pointed at one registry, with the steps the tests share."""

    driver: webdriver.Chrome
    base_url: str
    # Console errors a test expects (substrings of the message), e.g. a CSP test's own probe.
    expected_errors: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    # --- navigation and waiting

    def open(self, path: str = "/ui/") -> None:
        self.driver.get(self.base_url + path)

    def wait(self, condition: Any, message: str, timeout: float = WAIT) -> Any:
        return WebDriverWait(self.driver, timeout, poll_frequency=POLL).until(condition, message)

    def view(self) -> WebElement:
        return self.driver.find_element(By.ID, "view")

    def path(self) -> str:
        return unquote(urlsplit(self.driver.current_url).path)

    def wait_view(self, view: str, path: str | None = None) -> WebElement:
        """Wait until `#view` shows `view` in state ready (at `path`, when given: after a
        click the previous view is still ready until the app starts the next one).
        A view that ends in the error state fails at once, with the alert's text."""

        def settled(driver: webdriver.Chrome) -> str | None:
            if path is not None and self.path() != path:
                return None
            state: Any = driver.execute_script(
                "const v = document.getElementById('view');"
                "return v ? [v.dataset.view, v.dataset.state] : null"
            )
            if state is None or state[1] not in ("ready", "error"):
                return None
            return f"{state[0]}:{state[1]}"

        try:
            reached = self.wait(settled, f"view {view} at {path} never became ready")
        except TimeoutException:
            raise AssertionError(
                f"view {view} at {path} not ready; now at {self.path()}: {self.describe()}"
            ) from None
        assert reached == f"{view}:ready", f"{reached} instead of {view}:ready: {self.describe()}"
        return self.view()

    def wait_error(self, path: str | None = None) -> str:
        """Wait for the view's error state; the text of its `role=alert` error."""
        try:
            self.wait(
                lambda d: (
                    (path is None or self.path() == path)
                    and self.view().get_attribute("data-state") == "error"
                ),
                f"no error state at {path}",
            )
        except TimeoutException:
            raise AssertionError(f"no error state at {path}: {self.describe()}") from None
        alerts = self.view().find_elements(By.CSS_SELECTOR, "[role=alert].error")
        alerts = alerts or self.driver.find_elements(By.CSS_SELECTOR, "[role=alert].error")
        assert alerts, f"error state without a role=alert .error element: {self.describe()}"
        return " ".join(alert.text for alert in alerts)

    def describe(self) -> str:
        """Where the page is, for failure messages."""
        try:
            view = self.view()
            return (
                f"{self.driver.current_url} data-view={view.get_attribute('data-view')} "
                f"data-state={view.get_attribute('data-state')} text={view.text[:400]!r}"
            )
        except Exception as error:  # the page may not even have #view: say so
            return f"{self.driver.current_url}: {error}"

    def find(self, css: str) -> WebElement:
        """The first element matching `css`, once there is one."""
        found: WebElement = self.wait(
            lambda d: (d.find_elements(By.CSS_SELECTOR, css) or [None])[0],
            f"no element {css}: {self.describe()}",
        )
        return found

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text_of(self, css: str) -> str:
        """All text of the element, shown or not (closed `<details>` hide theirs from .text)."""
        return str(self.find(css).get_attribute("textContent") or "")

    def click(self, element: WebElement) -> None:
        # Scrolled into view first: at 360 px a table cell may be off screen.
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        element.click()

    # --- sessions

    def sign_in(self, account: Account) -> None:
        self.click(self.find("#signin"))
        self.find("#signin-dialog[open]")
        self.fill("#username", account.name)
        self.fill("#password", account.password)
        self.click(self.find("#signin-submit"))
        self.wait(
            lambda d: self.find("#whoami").text.strip() == account.name,
            f"#whoami never showed {account.name}: {self.describe()}",
        )

    def start_as(self, account: Account | None) -> None:
        """Open the repositories page and sign in as `account` (None: stay anonymous)."""
        self.open("/ui/")
        self.wait_view("repositories", "/ui/")
        if account is not None:
            self.sign_in(account)

    def fill(self, css: str, value: str) -> None:
        """Replace a field's value by typing, as a user does: the page sees input events
        (WebDriver's clear() sets the value without any)."""
        element = self.find(css)
        element.send_keys(Keys.CONTROL, "a")
        element.send_keys(Keys.BACKSPACE)
        if value:
            element.send_keys(value)

    def storage(self) -> dict[str, dict[str, str]]:
        """Everything in the page's sessionStorage and localStorage."""
        stored: dict[str, dict[str, str]] = self.driver.execute_script(
            "const dump = (s) => Object.fromEntries(Object.keys(s).map((k) => [k, s.getItem(k)]));"
            "return {session: dump(sessionStorage), local: dump(localStorage)}"
        )
        return stored

    def forget(self) -> None:
        """Back to a first visit: no session, no theme choice, nothing in memory."""
        if self.driver.current_url.startswith(self.base_url):
            self.driver.execute_script("sessionStorage.clear(); localStorage.clear()")
        self.driver.get("about:blank")

    # --- what the lists show

    def listed_repositories(self) -> set[str]:
        names: list[str] = self.driver.execute_script(
            "return [...document.querySelectorAll('#repositories tr[data-repo]')]"
            ".filter((r) => r.getClientRects().length).map((r) => r.dataset.repo)"
        )
        return set(names)

    def wait_repositories(self, expected: set[str]) -> None:
        self.wait(
            lambda d: self.listed_repositories() == expected,
            f"the repositories page never listed exactly {sorted(expected)}: {self.describe()}",
        )

    def visible_tags(self) -> list[str]:
        """The tags of the tags table's shown rows, in their order."""
        tags: list[str] = self.driver.execute_script(
            "return [...document.querySelectorAll('#tags tr[data-tag]')]"
            ".filter((r) => r.getClientRects().length).map((r) => r.dataset.tag)"
        )
        return tags

    # --- looks

    def set_theme(self, theme: str) -> None:
        """The system preference, as `prefers-color-scheme` (takes effect on the next load)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": theme}]},
        )

    def set_size(self, size: str) -> None:
        """Resize the window so that the page's viewport is SIZES[size] wide (and as tall as
        the window allows: headless windows keep a little room for absent browser chrome)."""
        width, height = SIZES[size]
        self.driver.set_window_size(width, height)
        inner: list[int] = self.driver.execute_script("return [innerWidth, innerHeight]")
        if inner != [width, height]:
            self.driver.set_window_size(2 * width - inner[0], 2 * height - inner[1])
        inner = self.driver.execute_script("return [innerWidth, innerHeight]")
        assert inner[0] == width, f"viewport {inner} for {size} {width}x{height}"

    def screenshot(self, path: Path) -> Path:
        """The whole page, not only the window: the parts of a manifest below the fold are
        what a reader of the screenshots wants to see."""
        width: int = self.driver.execute_script("return innerWidth")
        height = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"][
            "height"
        ]
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"
        return path

    # --- console and CSP

    def problems(self) -> list[str]:
        """Console errors and CSP violations since the last call, less the expected ones.
        An API answer the app handles (a 401 asking for a token, a 404 it shows) is logged
        by Chromium as a failed resource load: only those of the API are allowed."""
        found = []
        for entry in browser_log(self.driver):
            message = str(entry.get("message", ""))
            if entry.get("level") != "SEVERE" or self._expected(message):
                continue
            if entry.get("source") == "network" and self._is_api(message):
                continue
            found.append(f"{entry.get('source')}: {message}")
        violations: Any = self.driver.execute_script(
            "const v = window.__cspViolations || []; window.__cspViolations = []; return v"
        )
        found += [f"CSP violation: {v}" for v in violations or [] if not self._expected(v)]
        return found

    def _expected(self, message: str) -> bool:
        return any(expected in message for expected in self.expected_errors)

    def _is_api(self, message: str) -> bool:
        match = _NETWORK_URL.match(message)
        if match is None:
            return False
        url = urlsplit(match.group(1))
        return url.netloc == self.host and (url.path.startswith("/v2/") or url.path == "/token")


def browser_log(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """The browser's console entries since the last call (Chromium hands each out once)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def tokens_in(stored: dict[str, dict[str, str]]) -> Iterator[str]:
    """Every JSON Web Token found in stored values."""
    for area in stored.values():
        for value in area.values():
            yield from _JWT.findall(value or "")


def session_value(stored: dict[str, dict[str, str]]) -> dict[str, Any] | None:
    raw = stored["session"].get(SESSION_KEY)
    if raw is None:
        return None
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def exact_numbers(element: WebElement) -> set[int]:
    """The whole numbers an element shows or gives on hover (its own and its descendants'
    `title`s), separators removed: "12,585 bytes" gives 12585. Sizes are shown in human
    units with the exact count on hover; a test finds the exact count among these."""
    texts: list[str] = element.parent.execute_script(
        "const e = arguments[0], titled = [e, ...e.querySelectorAll('[title]')];"
        "return [e.textContent, ...titled.map((t) => t.title || '')]",
        element,
    )
    numbers = set()
    for text in texts:
        for run in re.findall(r"\d[\d,.\u202f\u00a0 ]*\d|\d", text):
            digits = re.sub(r"[,.\u202f\u00a0 ]", "", run)
            numbers.add(int(digits))
    return numbers


def shows(element: WebElement, value: str) -> bool:
    """Whether the element's text, or a `title` in it (the full value of a shortened digest
    or media type), contains `value`."""
    found: bool = element.parent.execute_script(
        "const e = arguments[0], v = arguments[1];"
        "return e.textContent.includes(v)"
        " || [e, ...e.querySelectorAll('[title]')].some((t) => (t.title || '').includes(v))",
        element,
        value,
    )
    return found
