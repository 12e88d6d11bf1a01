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
    return f"_holders/{digest.algorithm}/{digest.hex}"


def holder(digest: Digest, name: str) -> str:
    return f"{holders(digest)}/{name.replace('/', '+')}"


def holder_name(entry: str) -> str:
    return entry.replace("+", "/")


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def layers(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_layers"


def layer_link(name: str, digest: Digest) -> str:
    return f"{layers(name)}/{digest.algorithm}/{digest.hex}"


def revision(name: str, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/revisions/{digest.algorithm}/{digest.hex}"


def tags(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests/tags"


def tag(name: str, tag: str) -> str:
    return f"{tags(name)}/{tag}"


def referrers(name: str, subject: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_referrers/{subject.algorithm}/{subject.hex}"


def referrer(name: str, subject: Digest, manifest: Digest) -> str:
    return f"{referrers(name, subject)}/{manifest.algorithm}-{manifest.hex}"


def upload_data(upload_id: str) -> str:
    return f"_uploads/{upload_id}/data"


def upload_dir(upload_id: str) -> str:
    return f"_uploads/{upload_id}"
