"""The options of the server itself, declared once: the top of a Configuration's `spec`
(`dataDir`, plus the flags that have no YAML field), `spec.web` and `spec.metrics`.

The options of a driver are declared next to it (`registry/storage/s3_options.py`,
`registry/coord/redis_options.py`). `registry.config.flags` turns all of them into `Settings`;
the attribute names here are those of `Settings` where an option maps to one attribute.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ModelWrapValidatorHandler, ValidationInfo, model_validator

from registry.config.log_names import LEVELS
from registry.options import (
    STRICT,
    Address,
    Seconds,
    SecretSources,
    Text,
    WholeSeconds,
    address_option,
    declared,
    one_of,
    option,
    path_option,
    variable_option,
    with_secrets,
)


class ServeOptions(BaseModel):
    """`spec.dataDir`, and the options that exist only as flags and variables."""

    model_config = STRICT

    datadir: str = option(
        "./data",
        "dataDir",
        "where blobs, manifests, uploads and cached content are stored",
        flag="datadir",
        metavar="DIR",
        help="data directory (default ./data)",
    )
    adminname: str = option(
        "admin",
        None,
        "name of the admin user the admin password defines",
        flag="adminname",
        metavar="NAME",
        help="admin user name (default admin)",
    )
    adminpwd: str | None = option(
        None,
        None,
        "password of an admin user with every right on every repository (without "
        "`-cfgdir`, the only user; with it, a bootstrap account)",
        flag="adminpwd",
        metavar="PASSWORD",
        help="admin password (visible in the process list; prefer -adminpwdfile)",
        secret=True,
    )
    adminpwdfile: str | None = path_option(
        None,
        "file holding the admin password in clear; one trailing newline is removed",
        flag="adminpwdfile",
        help="file holding the admin password in clear; a trailing newline is stripped",
    )
    anonymous: bool = option(
        False,
        None,
        "allow unauthenticated read/write when no admin password is set (unsafe); only "
        "without `-cfgdir`",
        flag="anonymous",
        switch=True,
        help="allow unauthenticated read/write when no admin password is set (unsafe)",
    )
    workers: int = option(
        1,
        None,
        "worker processes",
        flag="workers",
        metavar="N",
        help="worker processes (default 1)",
        ge=1,
        le=256,
    )
    token_key_file: str | None = path_option(
        None,
        "PEM private key (RSA or EC) that signs bearer tokens with RS256/ES256 instead of "
        "a shared secret",
        flag="tokenkeyfile",
        help="PEM private key (RSA or EC) to sign bearer tokens with RS256/ES256 instead of a "
        "shared secret",
    )
    cfgdir: str | None = path_option(
        None,
        "folder of YAML manifests; the flag is repeatable, the variable a comma-separated list",
        flag="cfgdir",
        metavar="DIR",
        repeat=True,
        help="folder of YAML manifests (repeatable; env: comma-separated list)",
    )
    log_level: str = option(
        "info",
        None,
        one_of(tuple(LEVELS), code=True),
        flag="loglevel",
        metavar="LEVEL",
        help=one_of(tuple(LEVELS), "info"),
    )
    log_format: str | None = option(
        None,
        None,
        "`json` (one object per line) or `text`",
        flag="logformat",
        metavar="FORMAT",
        help="json (one object per line) or text; default: text on a terminal, else json",
        default_doc="`text` when stderr is a terminal, else `json`",
    )


class WebOptions(BaseModel):
    """`spec.web`: how the registry listens and signs its tokens.

    Validating a `spec.web` mapping (with `registry.options.validated`, whose `environ` is
    where `tokenSecretEnv` is read) checks every field and resolves the token secret: given
    as `tokenSecret`, `tokenSecretFile` or `tokenSecretEnv`, it ends up in `token_secret`.
    """

    model_config = STRICT
    # Names people write by habit, and what to tell them.
    yaml_hints: ClassVar[dict[str, str]] = {
        "certFile": "unknown field (the name is certfile, all lower case)",
        "keyFile": "unknown field (the name is keyfile, all lower case)",
    }

    addr: Address = address_option(
        "0.0.0.0:5000",
        "addr",
        "listen address",
        flag="addr",
        help="listen address (default 0.0.0.0:5000)",
    )
    token_secret: Text | None = option(
        None,
        "tokenSecret",
        "key that signs bearer tokens (HS256)",
        flag="tokensecret",
        metavar="SECRET",
        help="secret that signs bearer tokens (HS256); default: generated once and kept in "
        "the data directory (in Redis with -redisurl)",
        secret=True,
        type_doc="string, secret",
        default_doc="generated once and kept in the data directory, or in Redis when "
        "`spec.redis.url` is set",
    )
    token_secret_file: Text | None = path_option(
        "tokenSecretFile",
        "file holding the token secret (one trailing newline removed)",
        flag="tokensecretfile",
        help="file holding the token secret",
    )
    token_secret_env: Text | None = variable_option(
        "tokenSecretEnv", "environment variable holding the token secret"
    )
    token_lifetime: WholeSeconds = option(
        300,
        "tokenTimeout",
        "bearer token lifetime, at least 60 seconds (clients assume 60); the flag and its "
        "variable take whole seconds",
        flag="tokentimeout",
        aliases=("toketimeout",),
        metavar="SECONDS",
        help="bearer token lifetime in seconds, at least 60 (default 300)",
        ge=60,
        type_doc="whole seconds or duration",
        unit="s",
    )
    body_timeout: Seconds = option(
        60.0,
        "bodyTimeout",
        "how long a request body may pause (no byte arriving) before the request fails with "
        "`400 BLOB_UPLOAD_INVALID`; the upload it was writing is released for the client's "
        "retry. Above 0, at most 3600 s; the flag and its variable take seconds, fractions "
        "allowed",
        flag="bodytimeout",
        metavar="SECONDS",
        help="seconds a request body may pause before the request fails and frees what it "
        "holds, such as its upload (default 60)",
        gt=0,
        le=3600,
        type_doc="seconds or duration",
        unit="s",
    )
    ui: bool = option(
        False,
        "ui",
        "serve the web UI at `/ui/` (and redirect `/` there); see docs/ui.md",
        flag="ui",
        switch=True,
        help="serve the web UI at /ui/ (browse, inspect and manage images; docs/ui.md)",
    )
    certfile: Text | None = path_option(
        "certfile",
        "TLS certificate (PEM); HTTPS when both files are set",
        flag="certfile",
        aliases=("cert",),
        help="TLS certificate (PEM); HTTPS with -keyfile",
    )
    keyfile: Text | None = path_option(
        "keyfile", "TLS private key (PEM)", flag="keyfile", aliases=("key",)
    )
    trust_forwarded: bool = option(
        False,
        "trustForwardedHeaders",
        "build the token realm from `X-Forwarded-Proto` / `X-Forwarded-Host`, and take the "
        "client address of the access log from the last `X-Forwarded-For` entry; only behind "
        "a reverse proxy that sets them",
        flag="trustforwarded",
        switch=True,
        help="build the token realm from X-Forwarded-Proto/-Host and log the client address "
        "from X-Forwarded-For (only behind a reverse proxy that sets them)",
    )
    service: Text | None = option(
        None,
        "service",
        "the token `service` (audience)",
        flag="service",
        metavar="NAME",
        help="the token service name (audience); default: the host clients use",
        default_doc="the host clients use",
    )

    @model_validator(mode="wrap")
    @classmethod
    def _token_secret(
        cls, data: Any, handler: ModelWrapValidatorHandler[WebOptions], info: ValidationInfo
    ) -> WebOptions:
        return with_secrets(cls, data, handler, info, SecretSources("tokenSecret"))


class MetricsSettings(BaseModel):
    """`spec.metrics`: whether and where Prometheus metrics are served."""

    model_config = STRICT

    enabled: bool = option(
        True,
        "enabled",
        "serve Prometheus metrics at `/metrics`; `false` turns them off (an error together "
        "with an address)",
    )
    # Not an `Address`: a bad one is reported by `serve` with the flag's name.
    addr: str | None = address_option(
        None,
        "addr",
        "serve `/metrics` on this address only, **without authentication**, instead of on the "
        "main address (where it needs credentials of any defined user); keep it on a private "
        "network. Port `0` picks a free one. See [operations.md](operations.md#metrics).",
        flag="metricsaddr",
        help="serve /metrics on this address only, without authentication (keep it off the "
        "public network); default: /metrics on the main address, for authenticated users",
    )


_WEB = {declared_option.attr: declared_option for declared_option in declared(WebOptions)}
# Bounds the YAML loader and the flags both check (with their own wording).
MIN_TOKEN_TIMEOUT = int(_WEB["token_lifetime"].low or 0)
MAX_BODY_TIMEOUT = int(_WEB["body_timeout"].high or 0)
