"""Signing in and out, and what each identity is shown: only what RBAC lets it see, and
delete buttons only where it may delete."""

from __future__ import annotations

import re

import httpx

from tests.browser.access import ADMIN, READER
from tests.browser.content import Content
from tests.browser.page import SESSION_KEY, Page, session_value, tokens_in
from tests.server import RunningRegistry


def test_sign_in_then_out_leaves_no_token_in_storage(page: Page, content: Content) -> None:
    page.start_as(ADMIN)
    page.wait_repositories(content.repositories)  # the admin's list, not anonymous's

    stored = page.storage()
    session = session_value(stored)
    assert session is not None, f"no {SESSION_KEY} in sessionStorage: {stored}"
    refresh_token = session["refreshToken"]
    everything = repr(stored)
    assert ADMIN.password not in everything, "the password was stored"
    # Access tokens stay in memory; only the refresh token is kept, in sessionStorage.
    assert [t for t in tokens_in(stored) if t not in refresh_token] == []
    assert refresh_token not in repr(stored["local"])

    page.click(page.find("#signout"))
    page.wait(lambda d: page.find("#signin").is_displayed(), "no Sign in button after sign-out")
    assert not page.find("#whoami").is_displayed() or page.find("#whoami").text == ""
    stored = page.storage()
    assert SESSION_KEY not in stored["session"]
    assert refresh_token not in repr(stored)
    assert list(tokens_in(stored)) == []
    page.wait_repositories(content.public_repositories)  # back to what anonymous may see


def test_a_wrong_password_shows_the_api_message(
    page: Page, content: Content, ui_server: RunningRegistry
) -> None:
    challenge = httpx.get(f"{ui_server.url}/v2/").headers["WWW-Authenticate"]
    service = re.search(r'service="([^"]+)"', challenge)
    assert service is not None, challenge
    answer = httpx.post(
        f"{ui_server.url}/token",
        data={
            "grant_type": "password",
            "username": ADMIN.name,
            "password": "not-the-password",
            "service": service.group(1),
            "client_id": "simple-registry-ui",
        },
    )
    assert answer.status_code == 401
    message = answer.json()["errors"][0]["message"]

    page.start_as(None)
    page.click(page.find("#signin"))
    page.fill("#username", ADMIN.name)
    page.fill("#password", "not-the-password")
    page.click(page.find("#signin-submit"))
    error = page.find("#signin-error")
    page.wait(lambda d: error.is_displayed() and error.text, "no sign-in error shown")
    assert message in error.text
    assert error.get_attribute("role") == "alert"
    assert session_value(page.storage()) is None
    assert "not-the-password" not in repr(page.storage())


def test_anonymous_browsing_is_limited_by_rbac(page: Page, content: Content) -> None:
    page.start_as(None)
    page.wait_repositories(content.public_repositories)

    index = content.index
    page.open(f"/ui/{index.repo}")
    page.wait_view("tags", f"/ui/{index.repo}")
    assert page.visible_tags() == ["1.0"]
    page.find('#tags tr[data-tag="1.0"][data-loaded="true"]')
    assert page.all('button[data-action="delete-tag"]') == []

    page.open(f"/ui/{index.repo}:1.0")
    page.wait_view("manifest", f"/ui/{index.repo}:1.0")
    settled_management(page)
    assert page.all("#delete-manifest") == []

    # A repository anonymous visitors may not read: the registry's refusal, not its content.
    page.open(f"/ui/{content.private.repo}:1.0")
    shown = page.wait_error(f"/ui/{content.private.repo}:1.0")
    assert "DENIED" in shown, shown
    assert content.private.digest not in page.driver.page_source


def test_the_reader_sees_what_it_may_pull_and_no_delete_buttons(
    page: Page, content: Content
) -> None:
    page.start_as(READER)
    page.wait_repositories(content.repositories - {content.private.repo})

    repo = next(iter(content.scratch_tags.values())).repo
    page.open(f"/ui/{repo}")
    page.wait_view("tags", f"/ui/{repo}")
    page.find('#tags tr[data-tag="keep"][data-loaded="true"]')
    assert page.all('button[data-action="delete-tag"]') == []

    image = content.image
    page.open(f"/ui/{image.repo}:1.0")
    page.wait_view("manifest", f"/ui/{image.repo}:1.0")
    settled_management(page)
    assert page.all("#delete-manifest") == []


def settled_management(page: Page) -> None:
    """Wait until the manifest view has decided what to offer: once the delete permission is
    known the view says so (`#view[data-can-delete]`), and the button comes with a `true`."""
    page.find('#view[data-can-delete="false"]')
