"""The typed sections of a Configuration: `storage.s3`, `redis`, `metrics` and `gc`.

Each section is an options model declared next to what uses it (`S3Settings` beside the S3
driver, `RedisSettings` beside the Redis coordinator, `MetricsSettings` with the server's own
options). Their fields are checked where the YAML is read, so that a mistake names its file and
document like every other manifest error; `flags` later turns the merged sections, under the
command-line flags, into `Settings`. The unused section (`proxy`)
stays a plain mapping.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from registry.config.gc_options import GcSettings
from registry.config.serve_options import MetricsSettings
from registry.coord.redis_options import RedisSettings
from registry.options import SectionError, declared, section_errors, type_name, unknown_field
from registry.storage.s3_options import S3Settings

# `storage` holds one mapping per driver; the filesystem driver needs no section of its own.
STORAGE_DRIVERS: dict[str, type[BaseModel]] = {"s3": S3Settings}
MODELS: dict[str, type[BaseModel]] = {
    "redis": RedisSettings,
    "metrics": MetricsSettings,
    "gc": GcSettings,
}
# Each typed section by its path under `spec`, in the order docs and summaries list them.
TYPED: tuple[tuple[str, type[BaseModel]], ...] = (
    ("redis", RedisSettings),
    ("storage.s3", S3Settings),
    ("metrics", MetricsSettings),
    ("gc", GcSettings),
)


def at_path(sections: Mapping[str, object], path: str) -> Mapping[str, object]:
    """The merged section at a dotted path (`storage.s3`), empty when not given."""
    section: object = sections
    for part in path.split("."):
        section = section.get(part) if isinstance(section, Mapping) else None
    return section if isinstance(section, Mapping) else {}


def check(name: str, section: Mapping[str, object]) -> list[SectionError]:
    """Every bad field of the section called `name`; empty when it is valid."""
    if name == "storage":
        errors: list[SectionError] = []
        for driver, value in section.items():
            model = STORAGE_DRIVERS.get(driver)
            if model is None:
                drivers = tuple(STORAGE_DRIVERS)
                message = unknown_field(driver, drivers)
                errors.append(SectionError(f"storage.{driver}", message, drivers))
            else:
                errors += section_errors(f"storage.{driver}", value, model)
        return errors
    model = MODELS.get(name)
    return section_errors(name, section, model) if model is not None else []


def by_attribute(section: Mapping[str, object], model: type[BaseModel]) -> dict[str, object]:
    """A merged, already checked section keyed by attribute name instead of YAML key, so that
    flag values (keyed by attribute) can be laid over it."""
    attrs = {option.yaml: option.attr for option in declared(model) if option.yaml}
    return {attrs[key]: value for key, value in section.items()}


__all__ = [
    "MODELS",
    "STORAGE_DRIVERS",
    "TYPED",
    "SectionError",
    "at_path",
    "by_attribute",
    "check",
    "type_name",
]
