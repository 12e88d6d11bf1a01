"""The options of the S3 driver (`spec.storage.s3`, the `-s3*` flags), declared once.

Kept apart from the driver (`s3.py`) so that configuration can read them without importing
aiobotocore: this module needs only pydantic. To add an option, declare it here and read it
in the driver (docs/development.md, "Adding an option").
"""

from __future__ import annotations

from pydantic import BaseModel

from registry.options import STRICT, option


class S3Settings(BaseModel):
    """Where and how to reach the bucket; credentials default to the standard AWS chain."""

    model_config = STRICT

    bucket: str = option(
        ...,
        "bucket",
        "S3-compatible object storage instead of the data directory; required for S3",
        flag="s3bucket",
        metavar="BUCKET",
        help="keep blobs and metadata in this S3 bucket instead of the data directory "
        "(credentials: the standard AWS variables or files)",
    )
    region: str | None = option(
        None,
        "region",
        "the bucket's region",
        flag="s3region",
        metavar="REGION",
        help="S3 region",
        default_doc="the AWS chain's",
    )
    endpoint_url: str | None = option(
        None,
        "endpoint",
        "endpoint of an S3-compatible store (MinIO, Ceph, R2…)",
        flag="s3endpoint",
        metavar="URL",
        help="S3-compatible endpoint (MinIO, Ceph, R2, ...)",
        type_doc="string (URL)",
        default_doc="AWS",
    )
    prefix: str = option(
        "",
        "prefix",
        "key prefix inside the bucket",
        flag="s3prefix",
        metavar="PREFIX",
    )
    path_style: bool = option(
        False,
        "pathStyle",
        "path-style addressing (`http://endpoint/bucket/key`), as MinIO and most "
        "S3-compatible stores want",
        flag="s3pathstyle",
        switch=True,
        help="path-style S3 addressing (http://endpoint/bucket/key), as MinIO and most "
        "S3-compatible stores want",
    )
    access_key: str | None = option(
        None,
        "accessKey",
        "static credentials, with `secretKey`; without them, `AWS_ACCESS_KEY_ID`/"
        "`AWS_SECRET_ACCESS_KEY`, `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, web "
        "identity (EKS) and instance roles are used, in the AWS SDKs' order",
        secret=True,
        default_doc="the AWS credential chain",
    )
    secret_key: str | None = option(
        None,
        "secretKey",
        "the secret of `accessKey`",
        secret=True,
        type_doc="string, secret",
        default_doc="the AWS credential chain",
    )
    sse: str | None = option(None, "sse", "server-side encryption: `AES256` or `aws:kms`")
    sse_kms_key_id: str | None = option(
        None, "sseKmsKeyId", "KMS key for `sse: aws:kms`", default_doc="the bucket's key"
    )
    storage_class: str | None = option(
        None,
        "storageClass",
        "storage class of blobs and metadata (upload scratch objects keep the default class)",
        default_doc="`STANDARD`",
    )
    connect_timeout: float = option(
        5.0,
        "connectTimeoutSeconds",
        "bound on opening a connection to S3",
        ge=0.1,
        le=300,
    )
    read_timeout: float = option(
        60.0,
        "readTimeoutSeconds",
        "bound on one attempt's wait for S3 to answer or send more bytes",
        ge=0.1,
        le=3600,
    )
    max_attempts: int = option(
        3,  # botocore's, counting the first try
        "maxAttempts",
        "attempts per S3 call, the first included (botocore's standard retry mode, with "
        "backoff); after the last, the request answers `503`",
        ge=1,
        le=20,
    )
    request_timeout: float = option(
        10.0,
        "requestTimeoutSeconds",
        "deadline of each S3 call a request makes, **its retries included**; past it the "
        'call is abandoned and the request answers `503 UNAVAILABLE` ("the object store is '
        'unreachable; retry"), so a store that is slow rather than down fails requests in '
        "seconds, as `/readyz` does. Calls that carry bytes (an upload's parts, blobs pushed "
        "whole, copies) get one more second per MiB they move, and `CompleteMultipartUpload` "
        "50 ms per part; a pull's stream gets the deadline for each read, so it ends when S3 "
        "stops sending mid-blob (the client sees the connection close). "
        "`readTimeoutSeconds` \u00d7 `maxAttempts` above the deadline no longer lengthens a call; "
        "for a stalled attempt to be retried within it, make `readTimeoutSeconds` smaller "
        "than `requestTimeoutSeconds`",
        ge=0.1,
        le=3600,
    )
    max_connections: int = option(
        64,
        "maxConnections",
        "connections each worker process may open to S3",
        ge=1,
        le=10_000,
    )
    redirect: bool = option(
        False,
        "redirect",
        "answer blob `GET`s with `307` to a presigned S3 URL, so layer bytes flow from S3 to "
        "the client directly; authorization and the blob's presence are checked first, "
        '`HEAD` is still answered by the registry ([production.md, "Redirects"]'
        "(production.md#redirects))",
    )
    redirect_seconds: int = option(
        1200,
        "redirectSeconds",
        "how long a presigned URL stays valid",
        ge=60,
        le=7 * 24 * 3600,
    )
    public_endpoint: str | None = option(
        None,
        "publicEndpoint",
        "the S3 host clients reach, when it differs from the one the registry uses (an "
        "internal MinIO service name, say); URLs are signed for this host",
        type_doc="string (URL)",
        default_doc="`endpoint`",
    )
