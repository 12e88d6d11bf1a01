# simple-registry container image.
#
#   docker build -t simple-registry .
#   docker run -p 5000:5000 -e SIMPLE_REGISTRY_ADMINPWD=secret -v registry-data:/data simple-registry
#
# Every `serve` flag can be given as arguments after the image name (they replace CMD) or as a
# SIMPLE_REGISTRY_<FLAG> variable. `serve` refuses to start without an admin password
# (SIMPLE_REGISTRY_ADMINPWD or -adminpwdfile), manifests (-cfgdir) or -anonymous.
# The scaled mode (S3 + Redis, several instances behind a proxy) is in compose.yaml and
# docs/production.md.

# --- builder: install the project and its dependencies under /install ---------------------
FROM python:3.12-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package needs (.dockerignore keeps everything else out of the context).
# README.md is the package's long description in pyproject.toml.
COPY pyproject.toml README.md ./
COPY registry ./registry
# Every dependency has a wheel for CPython 3.12 on Linux, so no compiler is needed. The
# console script's shebang names the builder's /usr/local/bin Python, which the runtime stage
# has at the same path.
RUN pip install --prefix=/install .

# --- runtime ------------------------------------------------------------------------------
FROM python:3.12-slim

LABEL org.opencontainers.image.title="simple-registry" \
      org.opencontainers.image.description="OCI distribution-spec v1.1.1 container registry" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=builder /install /usr/local

# Checked at build time rather than discovered in production:
# - the command runs;
# - libcrypto's SHA256_* functions are found (ctypes, via `ldconfig -p`). Without them chunked
#   uploads still work, but every commit reads the whole upload back to hash it, which on S3
#   is one more GET of every layer.
# Then the unprivileged user (uid/gid 65532, the usual "nonroot") and its data directory.
# A new named volume mounted on /data takes this directory's owner and mode; a bind mount
# keeps the host directory's, which must be writable by uid 65532.
RUN set -eux; \
    simple-registry version; \
    python -c "from registry.oci.hashing import resumable_available as ok; \
assert ok('sha256') and ok('sha512'), 'libcrypto SHA256_*/SHA512_* not found'"; \
    groupadd --system --gid 65532 registry; \
    useradd --system --uid 65532 --gid 65532 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin registry; \
    install -d -o 65532 -g 65532 -m 0750 /data

USER 65532:65532
WORKDIR /data
EXPOSE 5000

# No HEALTHCHECK: the slim image has neither curl nor wget, and a probe written in Python
# would start a whole interpreter (tens of MiB, a fraction of a second of CPU) at every
# interval. Let the proxy or the orchestrator probe `GET /livez` (the process answers) and
# `GET /readyz` (S3 and Redis answer too); both need no credentials (docs/operations.md).

# The main process stops its workers on SIGTERM (Hypercorn gives requests in flight about
# 3 s) and exits; SIGINT (Ctrl-C) does the same.
STOPSIGNAL SIGTERM
ENTRYPOINT ["simple-registry"]
CMD ["serve", "-datadir", "/data"]
