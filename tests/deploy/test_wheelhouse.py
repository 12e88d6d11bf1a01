"""scripts/wheelhouse's own logic: which requirements the image's Python needs, whatever Python
runs the script. (Downloading is exercised by the image test, which builds from its output.)
Also the image test's reading of apt's sources, for its debootstrap."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import itertools
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement

from tests.deploy.image import _entries

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "wheelhouse"


@pytest.fixture(scope="module")
def wheelhouse() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("wheelhouse_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_markers_are_evaluated_for_the_images_python(wheelhouse: ModuleType) -> None:
    """redis needs async-timeout below 3.11.3: Debian 12's 3.11.2 does, 3.11.7 and 3.12 not."""
    requirement = Requirement('async-timeout>=4.0.3; python_full_version < "3.11.3"')
    for version, wanted in [("3.11.2", True), ("3.11.7", False), ("3.12", False)]:
        found = wheelhouse.needed(requirement, set(), wheelhouse.environments(version, "x86_64"))
        assert (found is not None) == wanted, version
        if found is not None:
            assert str(found) == "async-timeout>=4.0.3"  # the marker is not passed to pip


def test_an_unknown_micro_version_keeps_what_either_end_needs(wheelhouse: ModuleType) -> None:
    """`3.11` could be 3.11.0 or 3.11.9: a wheel too many is harmless, one missing is not."""
    requirement = Requirement('async-timeout>=4.0.3; python_full_version < "3.11.3"')
    assert wheelhouse.needed(requirement, set(), wheelhouse.environments("3.11", "x86_64"))


def test_extras_asked_of_a_wheel_count(wheelhouse: ModuleType) -> None:
    requirement = Requirement('cryptography>=3.4.0; extra == "crypto"')
    envs = wheelhouse.environments("3.12", "x86_64")
    assert wheelhouse.needed(requirement, set(), envs) is None
    assert wheelhouse.needed(requirement, {"crypto"}, envs) is not None


def test_pip_is_asked_for_the_images_interpreter_and_platform(wheelhouse: ModuleType) -> None:
    flags = wheelhouse.pip_target("3.11.2", "aarch64", "2.28")
    pairs = set(itertools.pairwise(flags))
    assert ("--python-version", "3.11.2") in pairs
    assert ("--abi", "cp311") in pairs
    assert "--only-binary=:all:" in flags
    platforms = {value for flag, value in pairs if flag == "--platform"}
    assert {
        "manylinux_2_28_aarch64",
        "manylinux_2_17_aarch64",
        "manylinux2014_aarch64",
    } <= platforms
    assert "manylinux_2_29_aarch64" not in platforms


def test_the_debian_mirror_is_read_from_either_apt_format() -> None:
    """The image test's debootstrap uses the mirror apt is configured with."""
    one_line = "# comment\ndeb [signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    assert list(_entries(one_line, deb822=False)) == [
        ("http://mirror.example/debian", ["bookworm"])
    ]
    deb822 = (
        "Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"
    )
    assert list(_entries(deb822, deb822=True)) == [
        ("http://deb.example/debian", ["bookworm", "bookworm-updates"])
    ]
