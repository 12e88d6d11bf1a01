"""The model's single entry point: one object per process wiring storage and coordination."""

from __future__ import annotations

from registry.coord.base import Coordinator
from registry.model.blobs import Blobs
from registry.model.listing import Listing
from registry.model.manifests import Manifests
from registry.model.uploads import Uploads
from registry.storage.base import StorageDriver


class Registry:
    def __init__(self, storage: StorageDriver, coord: Coordinator) -> None:
        self.storage = storage
        self.coord = coord
        self.blobs = Blobs(storage)
        self.uploads = Uploads(storage, coord, self.blobs)
        self.manifests = Manifests(storage, self.blobs)
        self.listing = Listing(storage)
