"""The UI's files: one version for the set, the page pointing at it."""

from __future__ import annotations

import pytest

from registry.ui.assets import PREFIX, Assets

PAGE = b'<script type="module" src="{{assets}}/app.js"></script>'


def test_the_page_names_the_versioned_path() -> None:
    assets = Assets({"index.html": PAGE, "app.js": b"1"})
    assert (
        assets.page.body
        == f'<script type="module" src="{PREFIX}/{assets.version}/app.js">'.encode() + b"</script>"
    )
    found = assets.file(assets.version, "app.js")
    assert found is not None and found.body == b"1"
    assert found.media_type == "text/javascript; charset=utf-8"


def test_any_change_to_any_file_is_a_new_version() -> None:
    one = Assets({"index.html": PAGE, "app.js": b"1", "views/a.js": b"a"})
    assert one.version != Assets({"index.html": PAGE, "app.js": b"2", "views/a.js": b"a"}).version
    assert one.version != Assets({"index.html": PAGE, "app.js": b"1", "views/b.js": b"a"}).version
    assert one.version == Assets({"views/a.js": b"a", "app.js": b"1", "index.html": PAGE}).version


def test_the_page_is_not_an_asset_and_other_versions_have_none() -> None:
    assets = Assets({"index.html": PAGE, "app.js": b"1"})
    assert assets.file(assets.version, "index.html") is None
    assert assets.file("0" * 16, "app.js") is None


def test_the_packaged_files_have_a_page_and_its_scripts() -> None:
    assets = Assets.packaged()
    assert b"{{assets}}" not in assets.page.body
    assert assets.file(assets.version, "app.js") is not None


def test_a_set_without_a_page_is_refused() -> None:
    with pytest.raises(ValueError, match=r"index\.html"):
        Assets({"app.js": b"1"})
