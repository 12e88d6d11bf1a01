"""Browsing in a real browser: each view, reached by clicking and by a bookmarked URL, shows
what the registry holds (compared with what the test pushed and with the API's answers)."""

from __future__ import annotations

import json

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.browser.access import ADMIN
from tests.browser.content import (
    BUNDLE_TYPE,
    MANY_TAGS,
    SBOM_TYPE,
    SIGNATURE_TYPE,
    Content,
)
from tests.browser.page import Page, exact_numbers, shows
from tests.oci import DOCKER_LIST, OCI_INDEX


def test_browse_from_the_repositories_to_an_image(page: Page, content: Content) -> None:
    page.start_as(ADMIN)
    page.wait_repositories(content.repositories)
    assert str(len(content.repositories)) in page.find("#repo-count").text

    image = content.image
    page.click(page.find(f'#repositories tr[data-repo="{image.repo}"] a'))
    page.wait_view("tags", f"/ui/{image.repo}")
    assert page.visible_tags() in (["1.0", "stable"], ["stable", "1.0"])
    crumbs = page.all("#breadcrumb a")
    assert crumbs[-1].get_attribute("aria-current") == "page"
    assert crumbs[0].get_attribute("href") == f"{page.base_url}/ui/"

    page.click(page.find('#tags tr[data-tag="1.0"] a'))
    page.wait_view("manifest", f"/ui/{image.repo}:1.0")
    assert shows(page.find("#manifest-digest"), image.digest)
    assert shows(page.find("#manifest-media-type"), image.media_type)


def test_an_image_shows_its_layers_config_and_raw_json(page: Page, content: Content) -> None:
    image = content.image
    page.start_as(ADMIN)
    page.open(f"/ui/{image.repo}:1.0")
    page.wait_view("manifest", f"/ui/{image.repo}:1.0")

    rows = page.all("#layers tr[data-digest]")
    assert [row.get_attribute("data-digest") for row in rows] == [
        layer["digest"] for layer in image.doc["layers"]
    ]
    for row, size in zip(rows, image.layer_sizes, strict=True):
        assert size in exact_numbers(row), f"{size} not in layer row {row.text!r}"
    assert sum(image.layer_sizes) in exact_numbers(page.find("#layers-total"))

    config = image.config["config"]
    fields = {
        "created": "2024-06-02",
        "os": "linux",
        "architecture": "amd64",
        "user": config["User"],
        "entrypoint": config["Entrypoint"][0],
        "cmd": config["Cmd"][1],
        "env": "APP_ENV=production",
        "labels": "org.opencontainers.image.source",
        "ports": "8080/tcp",
    }
    for name, value in fields.items():
        cell = page.find(f'#config [data-field="{name}"]')
        assert shows(cell, value), f"config {name}: {value!r} not in {cell.text!r}"
    history = page.all("#history tr")
    body_rows = [row for row in history if row.find_elements(By.TAG_NAME, "td")]
    assert len(body_rows) == len(image.config["history"])
    assert len(page.all("#history tr.empty-layer")) == 1
    assert shows(page.find("#annotations"), "org.opencontainers.image.created")

    assert json.loads(page.text_of("#raw-manifest pre")) == image.doc
    assert json.loads(page.text_of("#raw-config pre")) == image.config
    assert page.all("#raw-manifest button[data-copy]")


def test_referrers_are_grouped_and_followed(page: Page, content: Content) -> None:
    image = content.image
    page.start_as(ADMIN)
    page.open(f"/ui/{image.repo}@{image.digest}")
    page.wait_view("manifest", f"/ui/{image.repo}@{image.digest}")

    groups = {
        SIGNATURE_TYPE: content.signature.digest,
        SBOM_TYPE: content.sbom.digest,
    }
    for artifact_type, digest in groups.items():
        section = page.find(f'#referrers section[data-artifact-type="{artifact_type}"]')
        links = section.find_elements(By.CSS_SELECTOR, "a[data-digest]")
        assert [link.get_attribute("data-digest") for link in links] == [digest]

    page.click(page.find(f'#referrers a[data-digest="{content.signature.digest}"]'))
    page.wait_view("manifest", f"/ui/{image.repo}@{content.signature.digest}")
    assert shows(page.find("#manifest-digest"), content.signature.digest)
    assert shows(page.find("#artifact-type"), SIGNATURE_TYPE)


def test_an_index_drills_down_to_its_platforms(page: Page, content: Content) -> None:
    index = content.index
    page.start_as(None)  # public/: anonymous visitors may look
    page.open(f"/ui/{index.repo}:1.0")
    page.wait_view("manifest", f"/ui/{index.repo}:1.0")
    assert shows(page.find("#manifest-media-type"), OCI_INDEX)
    rows = page.all("#platforms tr[data-digest]")
    assert [row.get_attribute("data-digest") for row in rows] == [c.digest for c in index.children]
    for row, child in zip(rows, index.children, strict=True):
        assert shows(row, child.platform.split("/")[1]), row.text
        assert len(child.body) in exact_numbers(row), row.text

    arm64 = index.children[1]
    page.click(page.find(f'#platforms tr[data-digest="{arm64.digest}"] a'))
    page.wait_view("manifest", f"/ui/{index.repo}@{arm64.digest}")
    assert shows(page.find("#manifest-digest"), arm64.digest)
    assert len(page.all("#layers tr[data-digest]")) == len(arm64.layer_sizes)
    assert shows(page.find('#config [data-field="architecture"]'), "arm64")


def test_a_docker_manifest_list_shows_its_platforms(page: Page, content: Content) -> None:
    listing = content.docker_list
    page.start_as(None)
    page.open(f"/ui/{listing.repo}:1.0")
    page.wait_view("manifest", f"/ui/{listing.repo}:1.0")
    assert shows(page.find("#manifest-media-type"), DOCKER_LIST)
    rows = page.all("#platforms tr[data-digest]")
    assert [row.get_attribute("data-digest") for row in rows] == [
        c.digest for c in listing.children
    ]
    page.click(page.find(f'#platforms tr[data-digest="{listing.children[0].digest}"] a'))
    page.wait_view("manifest", f"/ui/{listing.repo}@{listing.children[0].digest}")
    assert shows(page.find('#config [data-field="user"]'), "app:app")


def test_an_artifact_shows_its_type_files_and_signature(page: Page, content: Content) -> None:
    artifact = content.artifact
    page.start_as(ADMIN)
    page.open(f"/ui/{artifact.repo}:0.1.0")
    page.wait_view("manifest", f"/ui/{artifact.repo}:0.1.0")
    assert shows(page.find("#artifact-type"), BUNDLE_TYPE)
    files = page.find("#files")
    for name in ("README.md", "data.json"):
        assert shows(files, name), files.text
    section = page.find(f'#referrers section[data-artifact-type="{SIGNATURE_TYPE}"]')
    assert section.find_element(By.CSS_SELECTOR, "a[data-digest]").get_attribute("data-digest") == (
        content.artifact_signature.digest
    )
    commands = pull_commands(page)
    reference = f"{page.host}/{artifact.repo}"
    assert f"oras pull {reference}:0.1.0" in commands
    assert f"oras pull {reference}@{artifact.digest}" in commands


def pull_commands(page: Page) -> list[str]:
    """The pull command lines, each checked to have a copy button that copies exactly it."""
    lines = page.find("#pull-commands").find_elements(By.TAG_NAME, "code")
    commands = []
    for line in lines:
        text = str(line.get_attribute("textContent")).strip()
        copies = page.driver.execute_script(
            "const row = arguments[0].closest('li, tr, div, p') || arguments[0].parentElement;"
            "return [...row.querySelectorAll('button[data-copy]')].map((b) => b.dataset.copy)",
            line,
        )
        assert text in copies, f"no copy button for {text!r}: {copies}"
        commands.append(text)
    return commands


def test_pull_commands_name_the_real_host_and_the_digest(page: Page, content: Content) -> None:
    image = content.image
    page.start_as(ADMIN)
    page.open(f"/ui/{image.repo}:1.0")
    page.wait_view("manifest", f"/ui/{image.repo}:1.0")
    commands = pull_commands(page)
    reference = f"{page.host}/{image.repo}"
    for expected in (
        f"docker pull {reference}:1.0",
        f"docker pull {reference}@{image.digest}",
        f"podman pull {reference}:1.0",
        f"podman pull {reference}@{image.digest}",
    ):
        assert expected in commands, f"{expected!r} not in {commands}"


def test_the_tags_page_of_300_tags(page: Page, content: Content) -> None:
    repo = content.many[0].repo
    page.start_as(ADMIN)
    page.open(f"/ui/{repo}")
    page.wait_view("tags", f"/ui/{repo}")
    assert "300" in page.find("#tag-count").text
    assert page.visible_tags() == list(MANY_TAGS)

    # Details come lazily; the first row's are those of the manifest t000 names.
    first = page.find('#tags tr[data-tag="t000"][data-loaded="true"]')
    assert shows(
        first.find_element(By.CSS_SELECTOR, 'td[data-field="digest"]'), content.many[0].digest
    )
    layers = sum(content.many[0].layer_sizes)
    # The total size: of the layers, or of the layers and the config (as `docker images`).
    totals = {layers, layers + len(content.many[0].config_bytes)}
    size = exact_numbers(first.find_element(By.CSS_SELECTOR, 'td[data-field="size"]'))
    assert size & totals, f"{size} holds none of {totals}"
    assert shows(first.find_element(By.CSS_SELECTOR, 'td[data-field="platforms"]'), "amd64")

    page.fill("#tag-filter", "t29")
    page.wait(
        lambda d: page.visible_tags() == [f"t29{n}" for n in range(10)],
        f"the filter t29 never left t290-t299: {page.visible_tags()[:20]}",
    )
    page.fill("#tag-filter", "")
    page.wait(lambda d: len(page.visible_tags()) == 300, "clearing the filter")

    # Newest first: the tags of the manifest created last (March) come before the others.
    Select(page.find("#tag-sort")).select_by_value("newest")
    newest = {tag for n, tag in enumerate(MANY_TAGS) if n % 3 == 2}
    page.wait(
        lambda d: set(page.visible_tags()[:100]) == newest,
        f"newest first never put the March tags first: {page.visible_tags()[:10]}",
    )


def test_a_bookmarked_manifest_url_loads_directly(page: Page, content: Content) -> None:
    image = content.image
    page.start_as(ADMIN)
    # A new page load at a deep URL: the session is picked up again from sessionStorage.
    page.open(f"/ui/{image.repo}@{image.digest}")
    page.wait_view("manifest", f"/ui/{image.repo}@{image.digest}")
    assert page.find("#whoami").text == ADMIN.name
    assert shows(page.find("#manifest-digest"), image.digest)
    assert len(page.all("#layers tr[data-digest]")) == 2


def test_an_unknown_repository_shows_the_api_message(
    page: Page, content: Content, admin_api: httpx.Client
) -> None:
    # public/ is readable by anonymous visitors, so the answer is the name's, not a refusal.
    answer = admin_api.get("/v2/public/nothing-here/tags/list")
    assert answer.status_code == 404
    error = answer.json()["errors"][0]
    assert error["code"] == "NAME_UNKNOWN"
    page.open("/ui/public/nothing-here")
    shown = page.wait_error("/ui/public/nothing-here")
    assert error["message"] in shown
    assert page.view().get_attribute("data-view") in ("tags", "notfound")
