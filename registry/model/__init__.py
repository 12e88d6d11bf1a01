"""Repository semantics over a storage driver and a coordinator."""

from registry.model.registry import Registry

__all__ = ["Registry"]
