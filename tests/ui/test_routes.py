"""Serving the web UI: where it answers, what it answers with, and that it is off by default.

In-process (`httpx` over the ASGI app): these are HTTP semantics of the application itself;
the app's behaviour in a browser is tested in tests/browser/ with a real Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from registry.ui.routes import CONTENT_SECURITY_POLICY
from tests.conftest import InProcessRegistry

VIEW_PATHS = [
    "/ui",
    "/ui/",
    "/ui/team/app/api",
    "/ui/library/nginx:1.27",
    "/ui/a@sha256:" + "0" * 64,
]


@pytest.fixture
def ui(in_process: Callable[..., InProcessRegistry]) -> Iterator[httpx.Client]:
    with in_process("-ui").client(auth=False, follow_redirects=False) as client:
        yield client


def _asset_paths(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/ui/_assets/[^"]+)"', page)


def test_off_by_default_the_root_and_the_ui_are_not_found(
    in_process: Callable[..., InProcessRegistry],
) -> None:
    with in_process().client(auth=False, follow_redirects=False) as client:
        for path in ["/", "/ui", "/ui/", "/ui/library/nginx"]:
            assert client.get(path).status_code == 404, path


def test_the_root_sends_the_browser_to_the_ui(ui: httpx.Client) -> None:
    answer = ui.get("/")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/"


@pytest.mark.parametrize("path", VIEW_PATHS)
def test_every_view_path_is_the_app_page(ui: httpx.Client, path: str) -> None:
    """Bookmarks of any view load the app, which draws the view from the path; no credentials
    are needed for the page itself (the data behind it asks for them)."""
    answer = ui.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["cache-control"] == "no-cache"
    assert "{{assets}}" not in answer.text
    assert _asset_paths(answer.text), "the page names its versioned files"


def test_every_answer_carries_the_security_headers(ui: httpx.Client) -> None:
    page = ui.get("/ui/")
    answers = [ui.get("/"), page, ui.get(_asset_paths(page.text)[0]), ui.get("/ui/_assets/x/y")]
    for answer in answers:
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_policy_forbids_inline_script_eval_and_framing() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["style-src"] == "'self'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


def test_the_page_has_no_inline_script(ui: httpx.Client) -> None:
    page = ui.get("/ui/").text
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", page, flags=re.S)
    assert scripts and all(body.strip() == "" for body in scripts)
    assert not re.search(r"\son[a-z]+=", page), "no inline event handlers"


def test_assets_are_versioned_and_kept_for_a_year(ui: httpx.Client) -> None:
    for path in _asset_paths(ui.get("/ui/").text):
        answer = ui.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        kind = path.rpartition(".")[2]
        expected = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
        assert answer.headers["content-type"].startswith(expected.get(kind, "")), path


def test_a_file_of_another_version_or_none_is_not_found(ui: httpx.Client) -> None:
    path = next(p for p in _asset_paths(ui.get("/ui/").text) if p.endswith(".js"))
    version = path.split("/")[3]
    other = path.replace(version, "0" * len(version))
    assert ui.get(other).status_code == 404
    assert ui.get(f"/ui/_assets/{version}/no-such-file.js").status_code == 404
    # The files are looked up by name, never on disk: a path out of the folder names none.
    assert ui.get(f"/ui/_assets/{version}/%2e%2e/%2e%2e/__init__.py").status_code == 404


def test_a_current_copy_is_answered_304(ui: httpx.Client) -> None:
    page = ui.get("/ui/")
    again = ui.get("/ui/library/x", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    weak = ui.get("/ui/", headers={"If-None-Match": f'"other", W/{page.headers["etag"]}'})
    assert weak.status_code == 304
    changed = ui.get("/ui/", headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200


def test_head_answers_like_get_without_a_body(ui: httpx.Client) -> None:
    answer = ui.head("/ui/")
    assert answer.status_code == 200
    assert answer.content == b""
    assert answer.headers["etag"] == ui.get("/ui/").headers["etag"]


def test_the_ui_takes_no_writes(ui: httpx.Client) -> None:
    for path in ["/ui", "/ui/x", "/"]:
        answer = ui.post(path, content=b"x")
        assert answer.status_code == 405, path
        assert {"GET", "HEAD"} <= {m.strip() for m in answer.headers["allow"].split(",")}


def test_the_registry_api_is_unchanged_beside_the_ui(ui: httpx.Client) -> None:
    answer = ui.get("/v2/")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer ")
