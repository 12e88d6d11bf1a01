"""Object store drivers. They know keys and bytes, nothing of HTTP, auth or OCI."""

from registry.storage.base import ObjectNotFound, StorageDriver

__all__ = ["ObjectNotFound", "StorageDriver"]
