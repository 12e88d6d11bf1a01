"""The web UI's files, read once from the package and kept in memory.

The app is a few small static files (`static/`), so holding them costs little and a request
never touches the disk. Every file but the page itself is served under one version, a hash of
all their contents: a browser may keep them for a year (`immutable`), and a new release, whose
version differs, is fetched anew. The page is the one file that must be revalidated: it names
the version (`{{assets}}` in `static/index.html` becomes the versioned path).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

PAGE = "index.html"
PLACEHOLDER = b"{{assets}}"
PREFIX = "/ui/_assets"
"""`_assets` can never be a repository's name: each component of one starts with a letter or
digit, so no view path of the app collides with it."""

MEDIA_TYPES = {
    "css": "text/css; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "ico": "image/x-icon",
    "js": "text/javascript; charset=utf-8",
    "json": "application/json",
    "png": "image/png",
    "svg": "image/svg+xml",
    "txt": "text/plain; charset=utf-8",
    "woff2": "font/woff2",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


class Assets:
    """The page and the versioned files; `version` names this set of them."""

    def __init__(self, files: dict[str, bytes]) -> None:
        """`files`: each file's path under `static/` and its bytes; `index.html` among them."""
        if PAGE not in files:
            raise ValueError(f"the web UI has no {PAGE}")
        digest = hashlib.sha256()
        for path in sorted(files):
            digest.update(f"{path}\0{len(files[path])}\0".encode())
            digest.update(files[path])
        self.version = digest.hexdigest()[:16]
        self.base = f"{PREFIX}/{self.version}"
        self.page = _asset(PAGE, files[PAGE].replace(PLACEHOLDER, self.base.encode()))
        self._files = {path: _asset(path, body) for path, body in files.items() if path != PAGE}

    @classmethod
    def packaged(cls) -> Assets:
        """The files installed with the package (`registry/ui/static/`)."""
        return cls(dict(_walk(resources.files(__package__ or "registry.ui") / "static", "")))

    def file(self, version: str, path: str) -> Asset | None:
        """The file at `path` if `version` is this set's; a page from another release asks
        for files this one does not have, and gets a 404 rather than other content under
        a name the browser will keep for a year."""
        return self._files.get(path) if version == self.version else None


def _asset(path: str, body: bytes) -> Asset:
    extension = path.rpartition(".")[2].lower()
    media_type = MEDIA_TYPES.get(extension, "application/octet-stream")
    return Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _walk(folder: Traversable, prefix: str) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            found += _walk(entry, f"{prefix}{entry.name}/")
        else:
            found.append((prefix + entry.name, entry.read_bytes()))
    return found
