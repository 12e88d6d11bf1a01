# simple-registry container image.
#
#   docker build -t simple-registry .
#   docker run -p 5000:5000 -e SIMPLE_REGISTRY_ADMINPWD=secret -v registry-data:/data simple-registry
#
# Every `serve` flag can be given as arguments after the image name (they replace CMD) or as a
# SIMPLE_REGISTRY_<FLAG> variable. `serve` refuses to start without an admin password
# (SIMPLE_REGISTRY_ADMINPWD or -adminpwdfile), manifests (-cfgdir) or -anonymous.
# The scaled mode (S3 + Redis, several instances behind a proxy) is in compose.yaml and
# docs/production.md. Building without network access, from another base, and what is in the
# image: docs/image.md. In short:
#
#   .venv/bin/python scripts/wheelhouse            # on a machine that reaches PyPI
#   docker build --network none -t simple-registry .

# The base: any Debian-like image with python3 (3.11 or newer), used by both stages. It needs
# no pip or venv package when the wheelhouse is there (Debian's python3 has neither).
ARG BASE_IMAGE=python:3.12-slim

# --- builder: the project and its dependencies in a venv at /opt/simple-registry ---------
FROM ${BASE_IMAGE} AS builder

# The whole context: .dockerignore lets in only pyproject.toml, README.md (the package's long
# description), registry/ and wheelhouse/ (wheels from scripts/wheelhouse, or only its
# .gitignore). One COPY and one RUN: dockerd's vfs storage driver copies the whole file system
# for every instruction.
COPY . /src
# A venv without pip: the runtime stage copies it whole, and the console script's shebang
# names its interpreter, a link to the base's python3, at the same path in both stages.
# With wheels, pip runs from its own wheel and reads nothing but /src/wheelhouse (no network:
# `docker build --network none` works); setuptools, the build backend, comes from there too.
# Without, the base's pip downloads everything (python:3.12-slim has pip; Debian's python3 does
# not). Every dependency has a wheel for CPython 3.11+ on Linux, so no compiler is needed.
RUN set -eu; \
    export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore; \
    python3 -m venv --without-pip /opt/simple-registry; \
    if ls /src/wheelhouse/*.whl >/dev/null 2>&1; then \
        /opt/simple-registry/bin/python3 "$(ls /src/wheelhouse/pip-*.whl | tail -n 1)/pip" \
            install --no-index --find-links /src/wheelhouse /src; \
    elif python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip --python /opt/simple-registry/bin/python3 install /src; \
    else \
        echo "no pip in BASE_IMAGE and no wheels in wheelhouse/: run scripts/wheelhouse" >&2; \
        exit 1; \
    fi; \
    /opt/simple-registry/bin/simple-registry version

# --- runtime ------------------------------------------------------------------------------
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="simple-registry" \
      org.opencontainers.image.description="OCI distribution-spec v1.1.1 container registry" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/opt/simple-registry/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# The venv alone: no compiler, pip cache, wheelhouse or sources come along.
COPY --from=builder /opt/simple-registry /opt/simple-registry

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
    python3 -c "from registry.oci.hashing import resumable_available as ok; \
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
# 3 s) and exits; SIGINT (Ctrl-C) does the same. Stated so that no BASE_IMAGE's own stop
# signal is inherited.
STOPSIGNAL SIGTERM
ENTRYPOINT ["simple-registry"]
CMD ["serve", "-datadir", "/data"]
