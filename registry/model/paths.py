"""The storage layout: every key the model reads or writes is built here, from validated parts.

Callers pass names that passed `validate_name` and digests that passed `Digest.parse`, so no
component can be empty, `.`, `..` or contain a separator it should not.
"""

from __future__ import annotations

from registry.oci.digests import Digest

REPOSITORIES = "repositories"


def blob(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def holders(digest: Digest) -> str:
    """Reverse index: which repositories link a blob, for mounts without `from`."""
    return f"_holders/{_by_digest(digest)}"


def holder(digest: Digest, name: str) -> str:
    return f"{holders(digest)}/{name.replace('/', '+')}"


def holder_name(entry: str) -> str:
    return entry.replace("+", "/")


def repository(name: str) -> str:
    """Everything one repository holds: its blob links, manifests, tags and referrers."""
    return f"{REPOSITORIES}/{name}"


def layer_link(name: str, digest: Digest) -> str:
    """The repository's link to a blob it may serve (the blobs themselves are shared)."""
    return f"{layers(name)}/{_by_digest(digest)}"


def layers(name: str) -> str:
    return f"{repository(name)}/_layers"


def revision(name: str, digest: Digest) -> str:
    """The repository's link to a manifest it holds, by the manifest's digest."""
    return f"{revisions(name)}/{_by_digest(digest)}"


def revisions(name: str) -> str:
    return f"{repository(name)}/_manifests/revisions"


def tag(name: str, tag: str) -> str:
    return f"{tags(name)}/{tag}"


def tags(name: str) -> str:
    return f"{repository(name)}/_manifests/tags"


def referrer(name: str, subject: Digest, manifest: Digest) -> str:
    return f"{referrers(name, subject)}/{manifest.algorithm}-{manifest.hex}"


def referrers(name: str, subject: Digest) -> str:
    """The manifests of the repository whose `subject` is the given digest."""
    return f"{repository(name)}/_referrers/{_by_digest(subject)}"


# Every upload in progress has a folder here; the purge of expired uploads lists it.
UPLOADS = "_uploads"


def upload_dir(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"


def upload_data(upload_id: str) -> str:
    return f"{upload_dir(upload_id)}/data"


def _by_digest(digest: Digest) -> str:
    return f"{digest.algorithm}/{digest.hex}"
