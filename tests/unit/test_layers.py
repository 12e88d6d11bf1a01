"""The import arrows between the package's layers (docs in the modules they name).

- `config` is the lowest layer: it reads and validates settings and imports nothing of `auth`
  or `api`. Commands that need several layers (registry/check_config.py) sit above them.
- The RBAC rule lives in `auth` (registry/auth/rbac.py); `auth` takes from `config` only the
  data it decides on (`config.model`) and the settings (`config.settings`).
- The HTTP handlers speak to the model only: storage errors and redirects are the model's.
  Only the app's construction (app.py) and its error rendering (errors.py) name a driver or
  the coordinator.
"""

from __future__ import annotations

import ast
from pathlib import Path

import registry

PACKAGE = Path(registry.__file__).parent


def _imports(module: Path) -> set[str]:
    """Every module `module` imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _arrows(layer: str, skip: tuple[str, ...] = ()) -> dict[str, set[str]]:
    return {
        path.name: {name for name in _imports(path) if name.startswith("registry.")}
        for path in sorted((PACKAGE / layer).glob("*.py"))
        if path.name not in skip
    }


def _within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def test_config_imports_no_higher_layer() -> None:
    for module, names in _arrows("config").items():
        upward = {n for n in names if _within(n, "registry.auth", "registry.api")}
        assert not upward, f"config/{module} imports {upward}"


def test_auth_takes_only_data_and_settings_from_config() -> None:
    allowed = ("registry.config.model", "registry.config.settings")
    for module, names in _arrows("auth").items():
        other = {n for n in names if _within(n, "registry.config") and not _within(n, *allowed)}
        assert not other, f"auth/{module} imports {other}"


def test_handlers_import_no_driver_and_no_coordinator() -> None:
    for module, names in _arrows("api", skip=("app.py", "errors.py")).items():
        below = {n for n in names if _within(n, "registry.storage", "registry.coord")}
        assert not below, f"api/{module} imports {below}"
