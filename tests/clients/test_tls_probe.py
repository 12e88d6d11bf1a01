"""TLS first, then plain HTTP: how Go clients find out that a registry port speaks only HTTP.

`docker manifest --insecure` (and containers/image) first dial the port with TLS and fall back
to plain HTTP only when the answer to their ClientHello reads as an HTTP response, which Go
reports as "server gave HTTP response to HTTPS client". So the plain-HTTP server must answer a
ClientHello with an HTTP 400 status line, and must then go on serving normal requests.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients.images import OCILayout, push_over_http, random_layer
from tests.clients.tools import clean_env, require_binary, run
from tests.server import RunningRegistry

pytestmark = pytest.mark.clients

READ_TIMEOUT = 30  # a bound on a hung server, not a measurement


def client_hello() -> bytes:
    """The bytes a real TLS client sends first, produced by Python's ssl module."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="registry.test")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()  # writes the ClientHello, then wants the server's answer
    hello = outgoing.read()
    assert hello[:1] == b"\x16", "not a TLS handshake record"
    return hello


def first_bytes(host: str, port: int, payload: bytes) -> bytes:
    """Send `payload` on a fresh connection; what comes back, up to the first line break."""
    with socket.create_connection((host, port), timeout=READ_TIMEOUT) as sock:
        sock.sendall(payload)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    return received


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
def test_tls_client_hello_gets_http_400(
    workers: int,
    registry_server: RunningRegistry,
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = registry_server if workers == 1 else start_registry("-workers", str(workers))
    host, port = server.host.rsplit(":", 1)

    answer = first_bytes(host, int(port), client_hello())

    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400")), answer[:200]
    with server.client() as http:
        assert http.get("/v2/").status_code == 200  # the server is still serving


def test_docker_manifest_inspect_insecure_falls_back_to_http(
    registry_server: RunningRegistry, repo: str, layout: OCILayout, tmp_path: Path
) -> None:
    docker = require_binary("docker")
    # Docker media types: the 20.10 CLI's `manifest inspect` does not know OCI manifests.
    image = layout.add_image([random_layer(1000)], docker_types=True)
    with registry_server.client() as http:
        push_over_http(http, repo, layout, image, "v1")
    config = tmp_path / "docker-config"
    config.mkdir()
    token = base64.b64encode(f"{registry_server.username}:{registry_server.password}".encode())
    auths = {"auths": {registry_server.host: {"auth": token.decode()}}}
    (config / "config.json").write_text(json.dumps(auths))
    env = clean_env({"DOCKER_CONFIG": str(config)})

    ref = f"{registry_server.host}/{repo}:v1"
    inspected = run([docker, "manifest", "inspect", "--insecure", "--verbose", ref], env=env)

    doc = json.loads(inspected.stdout)
    assert doc["Descriptor"]["digest"] == image.manifest.digest
    assert doc["Descriptor"]["size"] == image.manifest.size
    served = layout.read_blob(image.manifest.digest)
    assert doc["SchemaV2Manifest"] == json.loads(served)
    if "Raw" in doc:  # newer CLIs also show the bytes they received
        assert base64.b64decode(doc["Raw"]) == served
