"""The distribution-spec error codes, raised as exceptions and rendered as the error envelope.

Keeping the code, the HTTP status and the message together means a handler can never pair a
code with the wrong status, and every failure path produces the same envelope.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RegistryError(Exception):
    """A failure the client caused or must know about, rendered as `{"errors": [...]}`."""

    code: str = "UNKNOWN"
    status: int = 500
    default_message: str = "unknown error"

    def __init__(
        self,
        message: str | None = None,
        *,
        detail: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(self.message)

    def envelope(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}


class BlobUnknown(RegistryError):
    code, status, default_message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class DigestInvalid(RegistryError):
    code, status, default_message = "DIGEST_INVALID", 400, "provided digest did not match"


class ManifestBlobUnknown(RegistryError):
    code, status, default_message = "MANIFEST_BLOB_UNKNOWN", 400, "manifest references unknown blob"


class ManifestInvalid(RegistryError):
    code, status, default_message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestUnknown(RegistryError):
    code, status, default_message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class ManifestChildUnknown(RegistryError):
    """An index names a child manifest that the repository does not hold (a bad PUT, so 400)."""

    code, status, default_message = "MANIFEST_UNKNOWN", 400, "index references unknown manifest"


class NameInvalid(RegistryError):
    code, status, default_message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class TagInvalid(RegistryError):
    code, status, default_message = "TAG_INVALID", 400, "invalid tag"


class SizeInvalid(RegistryError):
    code, status, default_message = "SIZE_INVALID", 400, "provided length did not match content"


class PayloadTooLarge(RegistryError):
    code, status, default_message = "SIZE_INVALID", 413, "payload too large"


class RangeInvalid(RegistryError):
    code, status, default_message = "BLOB_UPLOAD_INVALID", 416, "requested range not satisfiable"


class PaginationInvalid(RegistryError):
    code, status, default_message = "PAGINATION_NUMBER_INVALID", 400, "invalid number of results"


class Unauthorized(RegistryError):
    code, status, default_message = "UNAUTHORIZED", 401, "authentication required"


class Denied(RegistryError):
    code, status, default_message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, status, default_message = "UNSUPPORTED", 405, "the operation is unsupported"


class NotFound(RegistryError):
    """No route matches; the spec has no code for that, and UNSUPPORTED says it truthfully."""

    code, status, default_message = "UNSUPPORTED", 404, "no such endpoint"


class Unavailable(RegistryError):
    code, status, default_message = "UNAVAILABLE", 503, "a backend is unavailable, retry later"
