"""How an option is declared, once, and what is derived from that declaration.

An option is a field of a pydantic model, written with `option(...)`: the model attribute is
the name the code reads (`settings.s3.bucket`), the YAML key is the field's alias
(`bucket` under `spec.storage.s3`), pydantic checks the type and range (`ge`/`le`), and the
rest travels in the field's extra data: the flag spelling(s) (`-s3bucket`, also read from
`SIMPLE_REGISTRY_S3BUCKET`), the `-h` help, how the docs' table shows the type and default,
and whether the value is a secret. From that one declaration come:

- the `serve` flags and their `-h` text (`add_flags`) and environment fallbacks (`env_name`);
- the YAML validation of a section, with this project's messages rather than pydantic's
  (`section_errors`): unknown fields with a "did you mean" hint, types, ranges;
- the option tables of docs/configuration.md (`registry.config.docs`).

Models are strict: YAML `"3"` is not the integer 3, and `true` is not a number, so that a
quoting mistake is reported instead of guessed at.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from registry.numbers import whole_number

ENV_PREFIX = "SIMPLE_REGISTRY_"

# Every options model: immutable (it ends up in `Settings`), unknown YAML keys refused, YAML
# keys (aliases) and attribute names both accepted (code builds models by attribute name).
STRICT = ConfigDict(frozen=True, extra="forbid", populate_by_name=True, strict=True)

_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}
_TYPE_DOCS = {str: "string", int: "whole number", float: "number", bool: "true or false"}


def option(
    default: Any,
    yaml: str | None,
    doc: str,
    *,
    flag: str | None = None,
    aliases: Sequence[str] = (),
    metavar: str | None = None,
    help: str | None = None,
    switch: bool = False,
    repeat: bool = False,
    ge: float | None = None,
    le: float | None = None,
    secret: bool = False,
    type_doc: str | None = None,
    default_doc: str | None = None,
    env: bool = True,
    unit: str = "",
) -> Any:
    """One option: `yaml` is its key in its section (None: a flag only), `doc` its meaning in
    the docs' table; `flag` (with `aliases`, `metavar`, `help`) makes it a `serve` flag, read
    also from `SIMPLE_REGISTRY_<FLAG>` unless `env` is false; `switch` for a flag that takes no
    value; `ge`/`le` its range; `type_doc`/`default_doc` what the docs show when the Python
    type or default says it badly; `unit` follows a value `check-config` shows. A secret never
    appears in a repr, a message or `check-config`'s summary."""
    extra: dict[str, Any] = {
        "flag": flag,
        "aliases": list(aliases),
        "metavar": metavar,
        "help": help if help is not None else doc,
        "switch": switch,
        "repeat": repeat,
        "secret": secret,
        "type_doc": type_doc,
        "default_doc": default_doc,
        "env": env,
        "unit": unit,
    }
    return Field(
        default,
        validation_alias=yaml,
        description=doc,
        ge=ge,
        le=le,
        repr=not secret,
        json_schema_extra=extra,
    )


@dataclass(frozen=True, slots=True)
class Declared:
    """An option as declared, read back from its model field."""

    attr: str
    yaml: str | None
    doc: str
    kind: type
    default: Any
    flag: str | None
    aliases: tuple[str, ...]
    metavar: str | None
    help: str
    switch: bool
    repeat: bool
    secret: bool
    type_doc: str | None
    default_doc: str | None
    low: float | None
    high: float | None
    env: bool
    required: bool
    unit: str

    @property
    def env_name(self) -> str | None:
        return ENV_PREFIX + self.flag.upper() if self.flag and self.env else None


def _kind(info: FieldInfo) -> type:
    """The base type of a field: `str` for `str | None`."""
    annotation = info.annotation
    for candidate in (bool, int, float, str):
        if annotation is candidate or candidate in getattr(annotation, "__args__", ()):
            return candidate
    return object


def _bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    low = high = None
    for item in info.metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    return low, high


def declared(model: type[BaseModel]) -> Iterator[Declared]:
    """The options of a model, in declaration order."""
    for attr, info in model.model_fields.items():
        extra = info.json_schema_extra
        assert isinstance(extra, dict), f"{model.__name__}.{attr} is not declared with option()"
        alias = info.validation_alias
        low, high = _bounds(info)
        yield Declared(
            attr=attr,
            yaml=alias if isinstance(alias, str) else None,
            doc=info.description or "",
            kind=_kind(info),
            default=info.default,
            flag=extra["flag"],  # type: ignore[arg-type]
            aliases=tuple(extra["aliases"]),  # type: ignore[arg-type]
            metavar=extra["metavar"],  # type: ignore[arg-type]
            help=str(extra["help"]),
            switch=bool(extra["switch"]),
            repeat=bool(extra["repeat"]),
            secret=bool(extra["secret"]),
            type_doc=extra["type_doc"],  # type: ignore[arg-type]
            default_doc=extra["default_doc"],  # type: ignore[arg-type]
            low=low,
            high=high,
            env=bool(extra["env"]),
            required=info.is_required(),
            unit=str(extra.get("unit") or ""),
        )


def default_of(model: type[BaseModel], attr: str) -> Any:
    """An option's declared default, for code that needs it outside the model."""
    return model.model_fields[attr].default


# --------------------------------------------------------------------------- YAML


class SectionError(ValueError):
    """A bad field; `path` is relative to the Configuration's `spec`, e.g. `redis.url`.

    `allowed` is set for an unknown field: the names the caller may suggest instead.
    """

    def __init__(self, path: str, message: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.allowed = allowed


def type_name(value: object) -> str:
    """How messages name the type of a YAML value: "a string", "a list", ..."""
    if value is None:
        return "null"
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return _KIND_NAMES[kind]
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a YAML {type(value).__name__}"


def unknown_field(key: str, allowed: Sequence[str], hint: str | None = None) -> str:
    """The message for an unknown key: a hint, the closest known name, or all of them."""
    if hint:
        return hint
    close = difflib.get_close_matches(key, list(allowed), n=1)
    if close:
        return f"unknown field (did you mean {close[0]!r}?)"
    return "unknown field (expected one of: " + ", ".join(allowed) + ")"


def yaml_keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(option.yaml for option in declared(model) if option.yaml)


def section_errors(
    path: str, section: object, model: type[BaseModel], *, partial: bool = True
) -> list[SectionError]:
    """Every bad field of a YAML section, in this project's words; empty when it is valid.

    With `partial`, a missing required field is no error: sections merge across documents,
    and whether the merged one is complete is checked when `Settings` are built.
    """
    if not isinstance(section, Mapping):
        return [SectionError(path, f"expected a mapping, got {type_name(section)}")]
    try:
        model.model_validate(section)
    except ValidationError as error:
        by_yaml = {option.yaml: option for option in declared(model) if option.yaml}
        return [
            _translated(path, item, by_yaml, yaml_keys(model))
            for item in error.errors()
            if not (partial and item["type"] == "missing")
        ]
    return []


def _translated(
    path: str, item: Any, options: Mapping[str, Declared], allowed: tuple[str, ...]
) -> SectionError:
    key = str(item["loc"][0]) if item["loc"] else ""
    where = f"{path}.{key}" if key else path
    kind = item["type"]
    if kind == "extra_forbidden":
        return SectionError(where, unknown_field(key, allowed), allowed)
    if kind == "missing":
        return SectionError(where, "required field is missing")
    declared_option = options.get(key)
    if declared_option is None:  # not expected: every field is declared with option()
        return SectionError(where, f"invalid value ({kind})")
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = declared_option.low, declared_option.high
        return SectionError(where, f"expected a value from {low:g} to {high:g}")
    # The value itself is never shown: it may be a secret (`secretKey`).
    expected = _KIND_NAMES.get(declared_option.kind, "another type")
    return SectionError(where, f"expected {expected}, got {type_name(item['input'])}")


# --------------------------------------------------------------------------- flags


def add_flags(parser: argparse.ArgumentParser, model: type[BaseModel]) -> None:
    """The model's flags, each as `-flag` and `--flag` (and its aliases likewise)."""
    for opt in declared(model):
        if opt.flag is None:
            continue
        spellings = []
        for name in (opt.flag, *opt.aliases):
            spellings += [f"-{name}", f"--{name}"]
        kwargs: dict[str, Any] = {"dest": opt.flag, "help": opt.help}
        if opt.switch:
            kwargs.update(action="store_const", const="true")
        else:
            kwargs.update(metavar=opt.metavar, action="append" if opt.repeat else "store")
        parser.add_argument(*spellings, **kwargs)


def flag_text(args: argparse.Namespace, env: Mapping[str, str], opt: Declared) -> str | None:
    """The option's text from its flag, else from its variable (flag > environment)."""
    assert opt.flag is not None
    value = getattr(args, opt.flag)
    if value is not None:
        return ",".join(value) if isinstance(value, list) else str(value)
    return env.get(opt.env_name) if opt.env_name else None


def parse_bool(value: str) -> bool | None:
    """A boolean flag or variable: 1/true/yes/on, 0/false/no/off or empty; None otherwise."""
    lowered = value.strip().lower()
    if lowered in ("1", "t", "true", "yes", "on"):
        return True
    if lowered in ("0", "f", "false", "no", "off", ""):
        return False
    return None


def flag_value(opt: Declared, text: str) -> object:
    """A flag's or variable's text as the option's type; ValueError saying what was expected
    (the range is the model's to check)."""
    if opt.kind is bool:
        parsed = parse_bool(text)
        if parsed is None:
            raise ValueError(f"not a boolean: {text!r}")
        return parsed
    if opt.kind is int:
        number = whole_number(text.strip())
        if number is None:
            raise ValueError(f"-{opt.flag} must be a whole number, not {text!r}")
        return number
    if opt.kind is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"-{opt.flag} must be a number, not {text!r}") from None
    return text


def shown(opt: Declared, value: object) -> str:
    """How `check-config` shows a value that is set: secrets only as "(set)"."""
    if opt.secret:
        return "(set)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}{opt.unit}"
    return f"{value}{opt.unit}"


def type_doc(opt: Declared) -> str:
    """The docs' "type" cell of an option."""
    if opt.type_doc:
        return opt.type_doc
    text = _TYPE_DOCS.get(opt.kind, "value")
    if opt.low is not None and opt.high is not None:
        text += f", {opt.low:g}\u2013{opt.high:g}"
    return text


def default_doc(opt: Declared) -> str:
    """The docs' "default" cell of an option."""
    if opt.default_doc is not None:
        return opt.default_doc
    if opt.default is None or opt.required:
        return "—"
    if isinstance(opt.default, bool):
        return f"`{str(opt.default).lower()}`"
    if isinstance(opt.default, float):
        return f"`{opt.default:g}`"
    if opt.default == "":
        return '`""`'
    return f"`{opt.default}`"
