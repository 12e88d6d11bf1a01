"""The model's single entry point: one object per process wiring storage and coordination."""

from __future__ import annotations

from registry.coord.base import Coordinator
from registry.model.blobs import Blobs
from registry.model.index import Lookup
from registry.model.listing import Listing
from registry.model.manifests import Manifests
from registry.model.protection import Generation
from registry.model.uploads import Uploads
from registry.storage.base import StorageDriver


class Registry:
    def __init__(
        self,
        storage: StorageDriver,
        coord: Coordinator,
        store: str,
        redirect_seconds: int | None = None,
    ) -> None:
        """`store` names the storage (its bucket and prefix, or its directory) for the
        coordinator's index; `redirect_seconds`, when set, sends blob pulls to the store with
        URLs valid that long (where the store gives them)."""
        self.storage = storage
        self.coord = coord
        self.store = store
        self.vouches = coord.vouches(store)
        # What this process remembers about blobs goes when the garbage collector deleted
        # some (see `protection`).
        self.generation = Generation(self.vouches)
        self.generation.on_change(storage.forget_cached)
        self.lookup = Lookup(storage, coord, store, self.generation)
        self.blobs = Blobs(storage, self.lookup, self.vouches, self.generation, redirect_seconds)
        self.uploads = Uploads(storage, coord, self.blobs, self.vouches)
        self.manifests = Manifests(storage, self.blobs, self.lookup, self.vouches)
        self.listing = Listing(self.lookup)
