"""The typed sections of a Configuration: `storage.s3`, `redis` and `metrics`.

Their fields are checked where the YAML is read, so that a mistake names its file and
document like every other manifest error; `flags` later turns the merged sections, under
the command-line flags, into `Settings` with the same function. The sections of features not
built yet (`proxy`, `gc`) stay plain mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Field(NamedTuple):
    """A field of a section: its `Settings` attribute, type and allowed range."""

    attr: str
    kind: type
    low: float | None = None
    high: float | None = None


class SectionError(ValueError):
    """A bad field; `path` is relative to the Configuration's `spec`, e.g. `redis.url`.

    `allowed` is set for an unknown field: the names the caller may suggest instead.
    """

    def __init__(self, path: str, message: str, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.allowed = allowed


S3_FIELDS = {
    "bucket": Field("bucket", str),
    "region": Field("region", str),
    "endpoint": Field("endpoint_url", str),
    "prefix": Field("prefix", str),
    "pathStyle": Field("path_style", bool),
    "accessKey": Field("access_key", str),
    "secretKey": Field("secret_key", str),
    "sse": Field("sse", str),
    "sseKmsKeyId": Field("sse_kms_key_id", str),
    "storageClass": Field("storage_class", str),
    "connectTimeoutSeconds": Field("connect_timeout", float, 0.1, 300),
    "readTimeoutSeconds": Field("read_timeout", float, 0.1, 3600),
    "maxAttempts": Field("max_attempts", int, 1, 20),
    "requestTimeoutSeconds": Field("request_timeout", float, 0.1, 3600),
    "maxConnections": Field("max_connections", int, 1, 10_000),
    "redirect": Field("redirect", bool),
    "redirectSeconds": Field("redirect_seconds", int, 60, 7 * 24 * 3600),
    "publicEndpoint": Field("public_endpoint", str),
}

REDIS_FIELDS = {
    "url": Field("url", str),
    "lockLeaseSeconds": Field("lock_lease_seconds", float, 1, 3600),
    "maxConnections": Field("max_connections", int, 1, 10_000),
    "timeoutSeconds": Field("timeout_seconds", float, 0.1, 300),
    "keyPrefix": Field("key_prefix", str),
}

METRICS_FIELDS = {"enabled": Field("enabled", bool), "addr": Field("addr", str)}

# `storage` holds one mapping per driver; the filesystem driver needs no section of its own.
STORAGE_DRIVERS = {"s3": S3_FIELDS}

_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "a boolean"}


def check(name: str, section: Mapping[str, object]) -> list[SectionError]:
    """Every bad field of the section called `name`; empty when it is valid."""
    if name == "storage":
        errors: list[SectionError] = []
        for driver, value in section.items():
            fields = STORAGE_DRIVERS.get(driver)
            if fields is None:
                errors.append(
                    SectionError(f"storage.{driver}", "unknown field", tuple(STORAGE_DRIVERS))
                )
            else:
                errors += _each_field(f"storage.{driver}", value, fields)
        return errors
    if name == "redis":
        return _each_field("redis", section, REDIS_FIELDS)
    if name == "metrics":
        return _each_field("metrics", section, METRICS_FIELDS)
    return []


def _each_field(path: str, section: object, fields: Mapping[str, Field]) -> list[SectionError]:
    """The errors `values` would raise, all of them: each field is checked on its own."""
    if not isinstance(section, Mapping):
        return [SectionError(path, f"expected a mapping, got {type_name(section)}")]
    errors = []
    for key, value in section.items():
        try:
            values(path, {key: value}, fields)
        except SectionError as error:
            errors.append(error)
    return errors


def values(path: str, section: object, fields: Mapping[str, Field]) -> dict[str, object]:
    """The section's fields, type- and range-checked, keyed by `Settings` attribute."""
    if not isinstance(section, Mapping):
        raise SectionError(path, f"expected a mapping, got {type_name(section)}")
    result: dict[str, object] = {}
    for key, value in section.items():
        spec = fields.get(key)
        if spec is None:
            raise SectionError(f"{path}.{key}", "unknown field", tuple(fields))
        result[spec.attr] = _checked(f"{path}.{key}", value, spec)
    return result


def type_name(value: object) -> str:
    """How messages name the type of a YAML value: "a string", "a list", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a YAML {type(value).__name__}"


def _checked(path: str, value: object, spec: Field) -> object:
    if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (spec.kind is not bool and isinstance(value, bool)) or not isinstance(value, spec.kind):
        # The value itself is never shown: it may be a secret (`secretKey`).
        raise SectionError(path, f"expected {_KIND_NAMES[spec.kind]}, got {type_name(value)}")
    if spec.low is not None and spec.high is not None and not spec.low <= value <= spec.high:  # type: ignore[operator]
        raise SectionError(path, f"expected a value from {spec.low:g} to {spec.high:g}")
    return value
