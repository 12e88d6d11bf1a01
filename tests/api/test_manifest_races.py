"""Manifest changes that race each other end in a state some serial order would give."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from tests.oci import OCI_INDEX, OCI_MANIFEST, descriptor, digest_of, error_codes, image_manifest
from tests.server import RunningRegistry

pytestmark = pytest.mark.anyio

ROUNDS = 40  # at once, in each of WAVES waves: unguarded code breaks some rounds every time
WAVES = 3


def _manifests(client: httpx.Client, repo: str, kind: str) -> list[bytes]:
    """ROUNDS distinct image manifests on the same (pushed) config and layer."""
    template = json.loads(image_manifest(client, repo)[0])
    return [
        json.dumps({**template, "annotations": {"round": f"{kind}{i}"}}).encode()
        for i in range(ROUNDS)
    ]


def _put(client: httpx.Client, repo: str, reference: str, body: bytes) -> None:
    r = client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert r.status_code == 201, r.text


async def _at_once(
    server: RunningRegistry, requests: list[tuple[str, str, bytes | None]]
) -> list[httpx.Response]:
    """Send every (method, path, manifest body) request concurrently, each on its own
    connection, so the server works on all of them at the same time."""
    async with httpx.AsyncClient(
        base_url=server.url,
        auth=(server.username or "", server.password or ""),
        timeout=60,
        limits=httpx.Limits(max_connections=len(requests)),
    ) as http:
        return await asyncio.gather(
            *(
                http.request(method, path, content=body, headers={"Content-Type": OCI_MANIFEST})
                for method, path, body in requests
            )
        )


async def test_tag_push_racing_a_delete_of_its_manifest(
    registry_server: RunningRegistry, client: httpx.Client, repo: str
) -> None:
    """Each round pushes tag `t<i>` to manifest M<i> while deleting M<i> by digest, all rounds
    at once. Both requests succeed; afterwards either the delete came last (the tag is gone
    with the manifest) or the push did (tag and manifest are back), never a tag naming a
    manifest that is gone."""
    bodies = _manifests(client, repo, "M")
    for _ in range(WAVES):
        for body in bodies:  # every M<i> exists before its round
            _put(client, repo, digest_of(body), body)
        requests: list[tuple[str, str, bytes | None]] = []
        for i, body in enumerate(bodies):
            requests.append(("PUT", f"/v2/{repo}/manifests/t{i}", body))
            requests.append(("DELETE", f"/v2/{repo}/manifests/{digest_of(body)}", None))
        responses = await _at_once(registry_server, requests)
        assert [r.status_code for r in responses] == [201, 202] * ROUNDS
        for i, body in enumerate(bodies):
            _check_serial(client, repo, i, body)


def _check_serial(client: httpx.Client, repo: str, i: int, body: bytes) -> None:
    """Tag and manifest both there (the push came last) or the tag gone (the delete did); an
    index naming the manifest is refused exactly when the manifest is gone."""
    digest = digest_of(body)
    by_tag = client.get(f"/v2/{repo}/manifests/t{i}")
    by_digest = client.get(f"/v2/{repo}/manifests/{digest}")
    if by_tag.status_code == 200:
        assert by_tag.headers["Docker-Content-Digest"] == digest
        assert by_digest.status_code == 200, f"round {i}: the tag names a deleted manifest"
    else:
        assert by_tag.status_code == 404, by_tag.text
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, body)],
    }
    r = client.put(
        f"/v2/{repo}/manifests/i{i}",
        content=json.dumps(index).encode(),
        headers={"Content-Type": OCI_INDEX},
    )
    if by_digest.status_code == 200:
        assert r.status_code == 201, r.text
    else:
        assert by_digest.status_code == 404, by_digest.text
        assert r.status_code == 400
        assert error_codes(r) == ["MANIFEST_UNKNOWN"]


async def test_tag_move_racing_a_delete_of_its_old_manifest(
    registry_server: RunningRegistry, client: httpx.Client, repo: str
) -> None:
    """Tag `t<i>` names M<i>; each round moves it to N<i> while deleting M<i>. In either
    serial order the tag ends on N<i>: the delete must not take the moved tag with it."""
    old, new = _manifests(client, repo, "M"), _manifests(client, repo, "N")
    for _ in range(WAVES):
        for i, body in enumerate(old):
            _put(client, repo, f"t{i}", body)
        requests: list[tuple[str, str, bytes | None]] = []
        for i, (m, n) in enumerate(zip(old, new, strict=True)):
            requests.append(("PUT", f"/v2/{repo}/manifests/t{i}", n))
            requests.append(("DELETE", f"/v2/{repo}/manifests/{digest_of(m)}", None))
        responses = await _at_once(registry_server, requests)
        assert [r.status_code for r in responses] == [201, 202] * ROUNDS
        for i, body in enumerate(new):
            r = client.get(f"/v2/{repo}/manifests/t{i}")
            assert r.status_code == 200, f"round {i}: the moved tag went with the old manifest"
            assert r.headers["Docker-Content-Digest"] == digest_of(body)
