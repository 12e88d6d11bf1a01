"""Managing from the browser: deleting a tag and a manifest, each after a confirmation that
says what goes, and the registry's API agreeing afterwards."""

from __future__ import annotations

import httpx

from tests.browser.access import ADMIN
from tests.browser.content import Content
from tests.browser.page import Page, shows


def tags_of(api: httpx.Client, repo: str) -> list[str]:
    answer = api.get(f"/v2/{repo}/tags/list")
    assert answer.status_code == 200, answer.text
    tags: list[str] = answer.json()["tags"] or []
    return sorted(tags)


def test_delete_a_tag_after_confirming(
    page: Page, content: Content, admin_api: httpx.Client
) -> None:
    repo = content.scratch_tags["drop"].repo
    page.start_as(ADMIN)
    page.open(f"/ui/{repo}")
    page.wait_view("tags", f"/ui/{repo}")
    assert sorted(page.visible_tags()) == ["drop", "keep"]

    # Cancelling changes nothing.
    page.click(page.find('#tags tr[data-tag="keep"] button[data-action="delete-tag"]'))
    page.find("#confirm[open]")
    page.click(page.find("#confirm-no"))
    page.wait(lambda d: not page.all("#confirm[open]"), "the confirmation stayed open")
    assert tags_of(admin_api, repo) == ["drop", "keep"]

    page.click(page.find('#tags tr[data-tag="drop"] button[data-action="delete-tag"]'))
    page.find("#confirm[open]")
    assert "drop" in page.find("#confirm-text").text
    page.click(page.find("#confirm-yes"))
    page.wait(
        lambda d: page.visible_tags() == ["keep"],
        f"the deleted tag stayed on the page: {page.visible_tags()}",
    )
    assert not page.all("#confirm[open]")
    assert "drop" in page.find(".ok[role=status]").text
    assert tags_of(admin_api, repo) == ["keep"]
    assert admin_api.get(f"/v2/{repo}/manifests/drop").status_code == 404
    # The manifest itself stays: only the tag was deleted.
    digest = content.scratch_tags["drop"].digest
    assert admin_api.get(f"/v2/{repo}/manifests/{digest}").status_code == 200


def test_delete_a_manifest_names_the_other_tags(
    page: Page, content: Content, admin_api: httpx.Client
) -> None:
    doomed = content.scratch_manifests["one"]
    repo = doomed.repo
    page.start_as(ADMIN)
    page.open(f"/ui/{repo}:one")
    page.wait_view("manifest", f"/ui/{repo}:one")
    here = page.find("#tags-here")
    page.wait(lambda d: shows(here, "two") and shows(here, "three"), f"#tags-here: {here.text!r}")
    assert not shows(here, "other")

    page.click(page.find("#delete-manifest"))
    page.find("#confirm[open]")
    text = page.find("#confirm-text")
    for tag in ("one", "two", "three"):
        assert shows(text, tag), f"the confirmation does not name {tag}: {text.text!r}"
    assert not shows(text, "other"), text.text
    assert shows(text, doomed.digest.split(":")[1][:12]), text.text
    page.click(page.find("#confirm-yes"))

    # Gone, the app goes to the repository's tags, which says so and lists what is left.
    page.wait_view("tags", f"/ui/{repo}")
    assert page.visible_tags() == ["other"]
    done = page.find(".ok[role=status]")
    assert shows(done, doomed.digest.split(":")[1][:12]), done.text
    assert admin_api.get(f"/v2/{repo}/manifests/{doomed.digest}").status_code == 404
    assert tags_of(admin_api, repo) == ["other"]
