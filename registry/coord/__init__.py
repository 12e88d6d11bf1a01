"""Coordination between workers: locks and upload session records. Knows nothing of HTTP."""

from registry.coord.base import Coordinator, LockTimeout

__all__ = ["Coordinator", "LockTimeout"]
