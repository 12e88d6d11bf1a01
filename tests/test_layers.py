"""The import arrows between the package's layers point down, never up or sideways.

Each top-level module or package of `registry` has a rank (docs/development.md, "Where each
layer lives"); a module may import only from a lower rank. On top of the ranks:
- `config` reads the drivers' option declarations (`storage.*_options`, `coord.*_options`),
  never a driver, which would load aiobotocore or redis-py to read a YAML file;
- `api` builds nothing: from `storage` and `coord` it names only the protocols and their errors
  (`base`), never a driver; composition is `wiring`'s;
- `auth` takes from `config` only the data it decides on, the settings and their declarations.
A new package needs a rank here, so its place is decided when it is added.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import registry

PACKAGE = Path(registry.__file__).parent

RANKS = {
    # leaves: pure helpers every layer may use
    "numbers": 0,
    "tempfiles": 0,
    "options": 1,
    # rules and backends, which know nothing of each other or of HTTP
    "oci": 2,
    "storage": 2,
    "coord": 2,
    # what is built on them
    "config": 3,
    "model": 3,
    "observe": 4,
    "auth": 5,
    "proxy": 5,  # under api, which will call it; over model, which it will fill
    "ui": 5,  # the browser app's files and routes, which the api adds when it is on
    "api": 6,
    # composition and commands
    "wiring": 7,
    "startup": 8,
    "check_config": 8,
    "server": 9,
    "gc": 9,
    "cli": 10,
    "__main__": 11,
    "__init__": 11,
}
ONLY_FROM = {
    # (importer, imported package): the modules of that package it may import
    ("config", "storage"): ("registry.storage.s3_options",),
    ("config", "coord"): ("registry.coord.redis_options",),
    ("api", "storage"): ("registry.storage.base",),
    ("api", "coord"): ("registry.coord.base",),
    ("proxy", "config"): ("registry.config.model",),
    ("auth", "config"): (
        "registry.config.model",
        "registry.config.settings",
        "registry.config.serve_options",
    ),
}


def _layer(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> Iterator[str]:
    """Every `registry.…` module the file imports, at the top, in functions or for typing."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        yield from (name for name in names if name.startswith("registry."))


def _arrows() -> Iterator[tuple[str, str, str]]:
    """(importing file, its layer, imported module) for every import across layers."""
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = _layer(path)
        for name in _imports(path):
            if name.split(".")[1] != layer:
                yield str(path.relative_to(PACKAGE)), layer, name


def _wrong(layer: str, name: str) -> str | None:
    """Why importing `name` from `layer` goes against the layering, or None."""
    target = name.split(".")[1]
    if target not in RANKS:
        return None  # a name imported from the package itself (`from registry import x`)
    if RANKS[target] >= RANKS[layer]:
        return f"{target} is not below {layer}"
    allowed = ONLY_FROM.get((layer, target))
    if allowed is not None and not any(
        name == module or name.startswith(module + ".") for module in allowed
    ):
        return f"{layer} may take from {target} only {', '.join(allowed)}"
    return None


def test_every_layer_has_a_rank() -> None:
    layers = {_layer(path) for path in PACKAGE.rglob("*.py")}
    assert layers <= set(RANKS), f"no rank for {sorted(layers - set(RANKS))}"


def test_imports_point_down() -> None:
    wrong = [
        f"{path} imports {name}: {why}"
        for path, layer, name in _arrows()
        if (why := _wrong(layer, name)) is not None
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    ("layer", "name"),
    [
        ("storage", "registry.coord.base"),  # sideways
        ("oci", "registry.storage.base"),  # sideways
        ("model", "registry.api.common"),  # upward
        ("config", "registry.observe.logs"),  # upward
        ("config", "registry.storage.s3"),  # a driver
        ("api", "registry.storage.filesystem"),  # a driver
        ("api", "registry.wiring"),  # composition is above the API
        ("auth", "registry.config.manifests"),  # not data, settings or declarations
    ],
)
def test_what_the_check_refuses(layer: str, name: str) -> None:
    assert _wrong(layer, name) is not None


@pytest.mark.parametrize(
    ("layer", "name"),
    [
        ("config", "registry.storage.s3_options"),
        ("api", "registry.storage.base"),
        ("wiring", "registry.storage.s3"),
        ("auth", "registry.config.model"),
        ("storage", "registry.numbers"),
    ],
)
def test_what_the_check_allows(layer: str, name: str) -> None:
    assert _wrong(layer, name) is None
