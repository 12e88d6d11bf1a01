"""Flags, environment variables and (later) YAML manifests into one immutable Settings."""

from registry.config.settings import ConfigError, Settings

__all__ = ["ConfigError", "Settings"]
