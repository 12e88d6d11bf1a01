"""Flags, environment variables and YAML manifests into one immutable `Settings`; each option
is declared once, in an options model (see `registry.options`)."""

from registry.config.settings import ConfigError, Settings

__all__ = ["ConfigError", "Settings"]
