"""The upstream client against a loopback server that answers what a broken or hostile
upstream might (`registry.proxy.upstream`): listings of the wrong shape and bodies too large
are the upstream being unavailable, never an error of ours."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest

from registry.config.model import PullThroughCache, Upstream
from registry.oci.digests import Digest
from registry.proxy.upstream import MAX_MANIFEST_BYTES, UpstreamUnavailable
from registry.proxy.upstream import Upstream as UpstreamClient
from tests.proxy.serving import LoopbackServer, QuietHandler, owner_of

SUBJECT = Digest.parse("sha256:" + "a" * 64)


class _Answers(QuietHandler):
    """GET answers 200 with the body the server's owner holds for the path."""

    def do_GET(self) -> None:
        body: bytes = owner_of(self)[self.path.split("?", 1)[0]]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def answers() -> dict[str, bytes]:
    return {}


@pytest.fixture
def client(answers: dict[str, bytes]) -> Iterator[UpstreamClient]:
    server = LoopbackServer(_Answers, answers)
    cache = PullThroughCache("odd", Upstream(server.url, timeout_seconds=5), (re.compile("x"),))
    yield UpstreamClient(cache)
    server.stop()


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"tags": 5}', b"\xff\xfe"])
def test_a_tags_listing_of_the_wrong_shape(
    client: UpstreamClient, answers: dict[str, bytes], body: bytes
) -> None:
    answers["/v2/app/tags/list"] = body
    with pytest.raises(UpstreamUnavailable, match="listed tags in no JSON"):
        asyncio.run(_tags(client))


@pytest.mark.parametrize("body", [b"{", b'{"manifests": 5}', b'"text"'])
def test_a_referrers_index_of_the_wrong_shape(
    client: UpstreamClient, answers: dict[str, bytes], body: bytes
) -> None:
    answers[f"/v2/app/referrers/{SUBJECT}"] = body
    with pytest.raises(UpstreamUnavailable, match="sent referrers in no JSON"):
        asyncio.run(_referrers(client))


def test_a_listing_larger_than_a_manifest_may_be_is_refused(
    client: UpstreamClient, answers: dict[str, bytes]
) -> None:
    answers["/v2/app/tags/list"] = b'{"tags": ["' + b"x" * MAX_MANIFEST_BYTES + b'"]}'
    with pytest.raises(UpstreamUnavailable, match="is over"):
        asyncio.run(_tags(client))


async def _tags(client: UpstreamClient) -> list[str]:
    try:
        return await client.tags("app")
    finally:
        await client.close()


async def _referrers(client: UpstreamClient) -> list[dict[str, object]]:
    try:
        return await client.referrers("app", SUBJECT)
    finally:
        await client.close()
