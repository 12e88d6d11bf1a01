"""How the pages look and behave: a screenshot of each view in both themes at desktop and
phone width (saved under the run's output folder), the theme toggle, keyboard focus, and the
Content-Security-Policy in force."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from tests.browser.access import ADMIN
from tests.browser.content import Content
from tests.browser.page import PNG_MAGIC, SIZES, THEME_KEY, THEMES, Page


def views(content: Content) -> dict[str, tuple[str, str]]:
    """Screenshot name: (view, path)."""
    return {
        "repositories": ("repositories", "/ui/"),
        "tags": ("tags", f"/ui/{content.image.repo}"),
        "manifest-index": ("manifest", f"/ui/{content.index.repo}:1.0"),
        "manifest-image": ("manifest", f"/ui/{content.image.repo}:1.0"),
        "manifest-artifact": ("manifest", f"/ui/{content.artifact.repo}:0.1.0"),
    }


def test_screenshots_of_every_view(page: Page, content: Content, output_dir: Path) -> None:
    page.start_as(ADMIN)
    written: list[Path] = []
    for theme in THEMES:
        page.set_theme(theme)
        for name, (view, path) in views(content).items():
            page.set_size("desktop")
            page.open(path)
            page.wait_view(view, path)
            # What comes after "ready" is in the picture too: tag details, referrers, tags.
            if view == "tags":
                page.find('#tags tr[data-loaded="true"]')
            if view == "manifest":
                page.find('#referrers[data-state="ready"]')
                page.find('#tags-here[data-state="ready"]')
            theme_shown = page.driver.execute_script(
                "return document.documentElement.dataset.theme"
            )
            assert theme_shown == theme, f"{name}: the page is {theme_shown} for a {theme} system"
            for size in SIZES:
                page.set_size(size)
                overflow = page.driver.execute_script(
                    "return document.documentElement.scrollWidth - innerWidth"
                )
                assert overflow <= 0, f"{name} at {size} is {overflow} px wider than the window"
                written.append(page.screenshot(output_dir / f"{name}-{theme}-{size}.png"))
    assert len(written) == len(views(content)) * len(THEMES) * len(SIZES)
    for shot in written:
        assert shot.read_bytes().startswith(PNG_MAGIC), shot


def test_the_theme_toggle_wins_over_the_system_and_is_kept(page: Page, content: Content) -> None:
    page.set_theme("dark")
    page.start_as(None)
    root_theme = "return document.documentElement.dataset.theme"
    assert page.driver.execute_script(root_theme) == "dark"
    background = "return getComputedStyle(document.body).backgroundColor"
    dark_background = page.driver.execute_script(background)

    page.click(page.find("#theme-toggle"))
    page.wait(lambda d: d.execute_script(root_theme) == "light", "the toggle did not switch")
    assert page.driver.execute_script(background) != dark_background
    assert page.storage()["local"].get(THEME_KEY) == "light"

    page.open(f"/ui/{content.index.repo}")
    page.wait_view("tags", f"/ui/{content.index.repo}")
    assert page.driver.execute_script(root_theme) == "light"


def test_tab_reaches_links_with_a_visible_focus(page: Page, content: Content) -> None:
    page.start_as(None)
    page.wait_repositories(content.public_repositories)
    page.find("body").click()
    focused = []
    for _ in range(40):  # bounded: the page has a handful of controls before the table
        ActionChains(page.driver).send_keys(Keys.TAB).perform()
        state = page.driver.execute_script(
            "const e = document.activeElement, s = getComputedStyle(e);"
            "return {tag: e.tagName, href: e.href, inTable: Boolean(e.closest('#repositories')),"
            " visible: e.matches(':focus-visible'), outline: s.outlineStyle,"
            " width: s.outlineWidth, shadow: s.boxShadow}"
        )
        focused.append(state["tag"])
        if state["tag"] == "A" and state["inTable"]:
            break
    else:
        raise AssertionError(f"Tab never reached a repository link; focus went {focused}")
    assert state["visible"], state
    has_outline = state["outline"] != "none" and state["width"] != "0px"
    assert has_outline or state["shadow"] != "none", f"no visible focus: {state}"

    # Enter follows the focused link (a repository's tags, or a namespace's filtered list).
    ActionChains(page.driver).send_keys(Keys.ENTER).perform()
    page.wait(
        lambda d: d.current_url == state["href"],
        f"Enter on the focused link did not go to {state['href']}: {page.describe()}",
    )
    page.wait(
        lambda d: page.view().get_attribute("data-state") == "ready",
        f"the page the link leads to never became ready: {page.describe()}",
    )


def test_the_content_security_policy_is_in_force(page: Page, content: Content) -> None:
    page.start_as(None)
    page.wait_repositories(content.public_repositories)
    assert (
        page.driver.execute_script("return document.querySelectorAll('script:not([src])').length")
        == 0
    )
    assert page.problems() == []

    # An inline script added to the page is refused by the policy, and says so.
    page.expected_errors.append("script-src")
    ran = page.driver.execute_script(
        "const s = document.createElement('script');"
        "s.textContent = 'window.inlineRan = true';"
        "document.head.append(s);"
        "return window.inlineRan === true"
    )
    assert ran is False, "an inline script ran: no Content-Security-Policy in force"
    violations = page.driver.execute_script("return window.__cspViolations || []")
    assert any(v.startswith("script-src") for v in violations), violations
