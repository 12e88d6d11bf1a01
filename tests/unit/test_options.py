"""Options are declared once: flags, variables, docs and layering follow from the declaration."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from registry.config import docs
from registry.config.flags import OPTION_MODELS, _built, _flag_values, parse_serve, serve_parser
from registry.config.settings import ConfigError
from registry.options import STRICT, Declared, declared, flag_text, option
from registry.storage.s3_options import S3Settings

CONFIGURATION_MD = Path(__file__).parents[2] / "docs" / "configuration.md"
FLAGGED = [opt for model in OPTION_MODELS for opt in declared(model) if opt.flag]


def test_the_docs_tables_are_those_the_declarations_make() -> None:
    text = CONFIGURATION_MD.read_text(encoding="utf-8")
    assert docs.render(text) == text, "run: python -m registry.config.docs docs/configuration.md"


def test_an_undocumented_option_makes_the_docs_out_of_date(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class WithPool(S3Settings):
        max_pool_connections: int = option(10, "maxPoolConnections", "pooled connections")

    sections = tuple(
        (prefix, WithPool if model is S3Settings else model) for prefix, model in docs.YAML_SECTIONS
    )
    monkeypatch.setattr(docs, "YAML_SECTIONS", sections)
    text = CONFIGURATION_MD.read_text(encoding="utf-8")
    rendered = docs.render(text)
    assert rendered != text
    assert "| `spec.storage.s3.maxPoolConnections` | whole number | `10` |" in rendered


@pytest.mark.parametrize("opt", FLAGGED, ids=lambda opt: opt.flag)
def test_every_flag_wins_over_its_variable(opt: Declared) -> None:
    """Each declared flag is a `serve` flag (in both spellings, with its aliases), its
    variable is read when the flag is absent, and the flag wins when both are given."""
    parser = serve_parser()
    assert opt.env_name is not None
    env = {opt.env_name: "from-env"}
    assert flag_text(parser.parse_args([]), env, opt) == "from-env"
    for name in (opt.flag, *opt.aliases):
        for spelling in (f"-{name}", f"--{name}"):
            argv = [spelling] if opt.switch else [spelling, "from-flag"]
            expected = "true" if opt.switch else "from-flag"
            assert flag_text(parser.parse_args(argv), env, opt) == expected


def test_help_shows_each_declared_flag_with_its_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "10000")  # no wrapping, which splits words at hyphens
    text = " ".join(serve_parser().format_help().split())
    for opt in FLAGGED:
        assert f"-{opt.flag}" in text
        assert " ".join(opt.help.split()) in text


def test_settings_with_both_backends_pickle_for_the_workers(tmp_path: Path) -> None:
    settings = parse_serve(
        ["-adminpwd", "pw", "-s3bucket", "b", "-redisurl", "redis://r:6379/0"], environ={}
    )
    assert settings.s3 is not None and settings.redis is not None
    assert pickle.loads(pickle.dumps(settings)) == settings


def test_a_secret_is_kept_out_of_the_repr() -> None:
    settings = S3Settings(bucket="b", access_key="AKIA-ID", secret_key="hidden-value")
    assert "hidden-value" not in repr(settings) and "AKIA-ID" not in repr(settings)


def test_configuration_loads_no_driver_and_no_observability() -> None:
    """Configuration reads the drivers' option modules, never the drivers (which pull in
    aiobotocore and redis-py) nor observability (which reads configuration): what loading it
    brings into a process, beyond the import lines tests/test_layers.py checks."""
    code = (
        "import sys, registry.config.flags, registry.config.manifests, registry.config.docs;"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    forbidden = {"registry.storage.s3", "registry.coord.redis", "aiobotocore", "redis"}
    assert not loaded & forbidden
    assert not {name for name in loaded if name.startswith("registry.observe")}


def test_every_option_is_declared_with_option() -> None:
    """A field written without `option()` would have no flag, docs or messages: refused."""

    class Plain(BaseModel):
        field: int = 1

    with pytest.raises(AssertionError, match="not declared with option"):
        list(declared(Plain))


class _Pool(BaseModel):
    """A section as a newcomer would add it (docs/development.md): a flag with a range."""

    model_config = STRICT

    size: int = option(10, "size", "pooled connections", flag="poolsize", ge=1, le=1000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "-poolsize: expected a value from 1 to 1000"),
        ("many", "-poolsize must be a whole number, not 'many'"),
    ],
)
def test_a_new_numeric_flag_is_checked_by_its_declaration(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _built(_Pool, _flag_values(lambda flag: text, _Pool))
    assert str(error.value) == message


def test_a_new_numeric_flag_in_range_is_a_number() -> None:
    assert _built(_Pool, _flag_values(lambda flag: "25", _Pool)).size == 25
    assert _built(_Pool, _flag_values(lambda flag: None, _Pool)).size == 10
