"""How an option is declared, once, and what is derived from that declaration.

An option is a field of a pydantic model, written with `option(...)`: the model attribute is
the name the code reads (`settings.s3.bucket`), the YAML key is the field's alias
(`bucket` under `spec.storage.s3`), pydantic checks the type and range (`ge`/`le`), and the
rest travels in the field's extra data: the flag spelling(s) (`-s3bucket`, also read from
`SIMPLE_REGISTRY_S3BUCKET`), the `-h` help, how the docs' table shows the type and default,
and whether the value is a secret. From that one declaration come:

- the `serve` flags and their `-h` text (`add_flags`) and environment fallbacks (`env_name`);
- the YAML validation of a section, with this project's messages rather than pydantic's
  (`section_errors`): unknown fields with a "did you mean" hint, types, ranges, and the value
  types a field may declare: `Text` (a non-empty string), `Address` (`HOST:PORT`), `Seconds`
  and `WholeSeconds` (a duration such as `30s` or whole seconds), and a secret given as itself,
  in a file or in an environment variable (`SecretSources`);
- the option tables of docs/configuration.md (`registry.config.docs`).

Models are strict: YAML `"3"` is not the integer 3, and `true` is not a number, so that a
quoting mistake is reported instead of guessed at.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
)
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

from registry.numbers import whole_number

ENV_PREFIX = "SIMPLE_REGISTRY_"
M = TypeVar("M", bound=BaseModel)

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
    gt: float | None = None,
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
    value; `ge`/`gt`/`le` its range; `type_doc`/`default_doc` what the docs show when the Python
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
        gt=gt,
        le=le,
        repr=not secret,
        json_schema_extra=extra,
    )


def path_option(
    yaml: str | None,
    doc: str,
    *,
    flag: str,
    help: str | None = None,
    metavar: str = "FILE",
    aliases: Sequence[str] = (),
    repeat: bool = False,
) -> Any:
    """An option naming a file (or, with `metavar="DIR"`, a folder); unset by default."""
    return option(
        None,
        yaml,
        doc,
        flag=flag,
        aliases=aliases,
        metavar=metavar,
        help=help,
        repeat=repeat,
        type_doc="path",
    )


def one_of(names: Sequence[str], default: str | None = None, code: bool = False) -> str:
    """A closed list of names for a help or a doc: "debug, info (default), warning or error";
    with `code`, each name as Markdown code."""
    words = [
        (f"`{name}`" if code else name) + (" (default)" if name == default else "")
        for name in names
    ]
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else "".join(words)


def variable_option(yaml: str, doc: str) -> Any:
    """An option naming an environment variable (to read a secret from); unset by default."""
    return option(None, yaml, doc, type_doc="variable name")


def address_option(default: str | None, yaml: str, doc: str, *, flag: str, help: str) -> Any:
    """An option holding an address to listen on, `HOST:PORT`."""
    return option(
        default, yaml, doc, flag=flag, metavar="HOST:PORT", help=help, type_doc="`HOST:PORT`"
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
    above: float | None  # an exclusive lower bound (`gt`)
    duration: Duration | None  # given as a duration, such as 30s
    env: bool
    required: bool
    unit: str

    @property
    def env_name(self) -> str | None:
        """`SIMPLE_REGISTRY_` and the flag in capitals, a dash as an underscore."""
        if not self.flag or not self.env:
            return None
        return ENV_PREFIX + self.flag.upper().replace("-", "_")


def _kind(info: FieldInfo) -> type:
    """The base type of a field: `str` for `str | None` and for `Text | None`."""
    annotation = info.annotation
    members = [
        get_args(arg)[0] if get_origin(arg) is Annotated else arg for arg in get_args(annotation)
    ]
    for candidate in (bool, int, float, str):
        if annotation is candidate or candidate in members:
            return candidate
    return object


def _bounds(info: FieldInfo) -> tuple[float | None, float | None, float | None]:
    low = high = above = None
    for item in info.metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
        above = getattr(item, "gt", above)
    return low, high, above


def declared(model: type[BaseModel]) -> Iterator[Declared]:
    """The options of a model, in declaration order."""
    for attr, info in model.model_fields.items():
        extra = info.json_schema_extra
        assert isinstance(extra, dict), f"{model.__name__}.{attr} is not declared with option()"
        alias = info.validation_alias
        low, high, above = _bounds(info)
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
            above=above,
            duration=next((item for item in info.metadata if isinstance(item, Duration)), None),
            env=bool(extra["env"]),
            required=info.is_required(),
            unit=str(extra.get("unit") or ""),
        )


def default_of(model: type[BaseModel], attr: str) -> Any:
    """An option's declared default, for code that needs it outside the model."""
    return model.model_fields[attr].default


# --------------------------------------------------------------------------- value types

# The errors the value types raise; their messages are already in this project's words.
_OWN_ERRORS = frozenset({"text", "address", "duration", "secret"})

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_HINT = "a duration such as 30s, 10m, 1h, 30d, or whole seconds"


def _own_error(kind: str, message: str) -> PydanticCustomError:
    # The message travels as a value, so that braces in what a user wrote are not a template.
    return PydanticCustomError(kind, "{message}", {"message": message})


def text_problem(value: object) -> str | None:
    """What is wrong with a value that must be a non-empty string; None when nothing is."""
    if not isinstance(value, str):
        # YAML reads `5000` and `yes` as a number and a boolean: quoting makes them text.
        hint = " (quote it)" if isinstance(value, int | float | bool) else ""
        return f"expected a string, got {type_name(value)}{hint}"
    return None if value.strip() else "must not be empty"


def _text(value: object) -> object:
    problem = None if value is None else text_problem(value)  # `Text | None`: null is unset
    if problem is not None:
        raise _own_error("text", problem)
    return value


def is_host_port(text: str) -> bool:
    """`HOST:PORT` (the host may be empty: every interface), the port from 0 to 65535."""
    _, sep, port = text.rpartition(":")
    number = whole_number(port)
    return bool(sep) and number is not None and number <= 65535


def _address(value: object) -> object:
    text = _text(value)
    if isinstance(text, str) and not is_host_port(text):
        raise _own_error("address", f"expected HOST:PORT, got {text!r}")
    return text


# A string that says something: blank is refused, and a YAML number or boolean is refused
# with a hint to quote it.
Text = Annotated[str, BeforeValidator(_text)]
# A listen address, `HOST:PORT`.
Address = Annotated[str, BeforeValidator(_address)]


def seconds_of(value: object) -> float | None:
    """Seconds from whole seconds or `30s`, `10m`, `1h30m`, `30d`, `500ms`; None if invalid."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    number = whole_number(text)
    if number is not None:
        return float(number)
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


def describe_duration(value: object) -> str:
    """A duration a user gave, for a message: short strings as written, else their type."""
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)
    return type_name(value)


@dataclass(frozen=True, slots=True)
class Duration:
    """Field metadata: the value is given as whole seconds or as a duration such as `30s`
    (`Seconds`, `WholeSeconds`); the field keeps seconds, whole ones with `whole`."""

    whole: bool = False

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_before_validator_function(self.seconds, handler(source))

    def seconds(self, value: object) -> object:
        seconds = seconds_of(value)
        if seconds is None or (self.whole and seconds != int(seconds)):
            # Worded by `section_errors`, which knows the option's range.
            raise PydanticCustomError("duration", "not a duration")
        return int(seconds) if self.whole else seconds


Seconds = Annotated[float, Duration()]
WholeSeconds = Annotated[int, Duration(whole=True)]


@dataclass(frozen=True, slots=True)
class SecretSources:
    """A secret given as itself (`key`), in a file (`keyFile`: its content, one trailing
    newline removed) or in an environment variable (`keyEnv`), at most one of the three, so
    that a secret need not be written in a manifest."""

    key: str

    @property
    def keys(self) -> tuple[str, str, str]:
        return (self.key, f"{self.key}File", f"{self.key}Env")

    def resolve(self, values: Mapping[str, object], environ: Mapping[str, str]) -> str | None:
        """The secret; None when none is given, or when the one given is not text (its own
        type check says so). `SectionError` (with the key as path) for a secret that cannot
        be read; the secret itself is never in a message."""
        given = [key for key in self.keys if values.get(key) is not None]
        if len(given) > 1:
            raise SectionError(
                given[1], "give only one of " + ", ".join(self.keys[:2]) + f" and {self.keys[2]}"
            )
        value = values.get(given[0]) if given else None
        if not isinstance(value, str) or not value.strip():
            return None
        if given[0] == self.keys[1]:
            return _file_secret(given[0], value)
        if given[0] == self.keys[2]:
            return _env_secret(given[0], value, environ)
        return value


def _file_secret(key: str, name: str) -> str:
    try:
        content = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise SectionError(key, f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SectionError(key, f"{name} is not UTF-8 text") from None
    content = content.removesuffix("\n").removesuffix("\r")
    if not content.strip():
        raise SectionError(key, f"{name} is empty")
    return content


def _env_secret(key: str, variable: str, environ: Mapping[str, str]) -> str:
    if variable not in environ:
        raise SectionError(key, f"environment variable {variable} is not set")
    if not environ[variable]:
        raise SectionError(key, f"environment variable {variable} is empty")
    return environ[variable]


def _reraisable(item: Any) -> InitErrorDetails:
    """A reported error as pydantic takes it back: its own kinds by name, ours rebuilt."""
    if item["type"] in _OWN_ERRORS:
        return {"type": _own_error(item["type"], item["msg"]), "loc": item["loc"], "input": None}
    return item  # type: ignore[no-any-return]


def with_secrets(
    model: type[M],
    data: Any,
    handler: ModelWrapValidatorHandler[M],
    info: ValidationInfo,
    sources: SecretSources,
) -> M:
    """The body of a model's wrap validator for a secret it takes from `sources`: the secret
    read from the file or variable becomes the value of `sources.key`, and a secret that
    cannot be read is reported together with the other fields' mistakes. The variables are
    looked up in the validation context's `environ` (default: the process environment)."""
    errors: list[InitErrorDetails] = []
    if isinstance(data, Mapping):
        environ = (info.context or {}).get("environ", os.environ)
        try:
            secret = sources.resolve(data, environ)
        except SectionError as problem:
            secret = None
            errors.append(
                {
                    "type": _own_error("secret", problem.message),
                    "loc": (problem.path,),
                    "input": None,
                }
            )
        if secret is not None:
            data = {key: value for key, value in data.items() if key not in sources.keys}
            data[sources.key] = secret
    try:
        validated = handler(data)
    except ValidationError as error:
        errors = [*map(_reraisable, error.errors()), *errors]
    if errors:
        raise ValidationError.from_exception_data(model.__name__, errors)
    return validated


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
    return validated(path, section, model, partial=partial)[1]


def validated(
    path: str,
    section: object,
    model: type[M],
    *,
    partial: bool = True,
    environ: Mapping[str, str] | None = None,
) -> tuple[M | None, list[SectionError]]:
    """The section as its model (None when it has mistakes), and its mistakes as
    `section_errors` words them. `environ` is where secrets given as variables are read.

    A model may name `yaml_hints` (a class variable): the message for a known misspelling."""
    if not isinstance(section, Mapping):
        return None, [SectionError(path, f"expected a mapping, got {type_name(section)}")]
    context = {"environ": os.environ if environ is None else environ}
    try:
        return model.model_validate(section, context=context), []
    except ValidationError as error:
        translate = _Translator(path, section, model)
        items = [item for item in error.errors() if not (partial and item["type"] == "missing")]
        # In the order the fields are written (pydantic lists unknown ones last).
        order = {key: index for index, key in enumerate(section)}
        items.sort(key=lambda item: order.get(item["loc"][0] if item["loc"] else None, -1))
        return None, [translate(item) for item in items]


@dataclass(frozen=True, slots=True)
class _Translator:
    """A pydantic error of one section, in this project's words."""

    path: str
    section: Mapping[Any, object]
    model: type[BaseModel]

    def __call__(self, item: Any) -> SectionError:
        key = str(item["loc"][0]) if item["loc"] else ""
        where = f"{self.path}.{key}" if key else self.path
        kind = item["type"]
        allowed = yaml_keys(self.model)
        if kind == "extra_forbidden":
            hints: Mapping[str, str] = getattr(self.model, "yaml_hints", {})
            return SectionError(where, unknown_field(key, allowed, hints.get(key)), allowed)
        if kind == "missing":
            return SectionError(where, "required field is missing")
        if kind in _OWN_ERRORS and kind != "duration":
            return SectionError(where, item["ctx"]["message"])
        opt = next((opt for opt in declared(self.model) if opt.yaml == key), None)
        if opt is None:  # not expected: every field is declared with option()
            return SectionError(where, f"invalid value ({kind})")
        if opt.duration is not None:
            return SectionError(where, _duration_message(opt, self.section.get(key), kind))
        if kind in ("greater_than_equal", "less_than_equal"):
            return SectionError(where, f"expected a value from {opt.low:g} to {opt.high:g}")
        # The value itself is never shown: it may be a secret (`secretKey`).
        expected = _KIND_NAMES.get(opt.kind, "another type")
        return SectionError(where, f"expected {expected}, got {type_name(item['input'])}")


def _duration_message(opt: Declared, given: object, kind: str) -> str:
    """What a duration option expects, from its range; `given` is the value as written."""
    got = describe_duration(given)
    if opt.duration is not None and opt.duration.whole:
        least = f" >= {opt.low:g}" if opt.low is not None else ""
        return f"expected whole seconds{least} or a duration such as 5m, got {got}"
    if kind == "duration":
        return f"expected {DURATION_HINT}, got {got}"
    limits = [
        f"above {opt.above:g}" if opt.above is not None else "",
        f"at least {opt.low:g}s" if opt.low is not None else "",
        f"at most {opt.high:g}s" if opt.high is not None else "",
    ]
    return (
        "expected a duration " + " and ".join(limit for limit in limits if limit) + f", got {got}"
    )


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
    if opt.duration is not None:
        seconds = seconds_of(text.strip())
        if seconds is None:
            raise ValueError(f"-{opt.flag} must be {DURATION_HINT}, not {text!r}")
        return text.strip()  # as in YAML: the model reads it, checks its range and fraction
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
    if opt.duration is not None and isinstance(value, str):
        value = seconds_of(value)  # as written in YAML (`2h`): shown in seconds like the rest
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
