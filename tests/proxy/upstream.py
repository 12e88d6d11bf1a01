"""The test upstream of the pull-through cache: real Distribution behind a fault proxy, with
token auth from the test's own issuer.

    client/cache ──▶ FaultProxy (url) ──▶ Distribution (direct_url)
          └──── token realm ──▶ TokenIssuer (tokens.realm)

`Upstream.url` is what a cache is configured with; `direct_url` bypasses the faults. The
realm in Distribution's challenges points at the issuer, not through the proxy: faults hit the
registry, never the token service (as when Docker Hub's registry fails but auth does not).

The user `username`/`password` may pull, push and delete everywhere; anonymous callers may
pull repositories whose names are in `public` (a set: `upstream.public.add(repo)`) and nothing
else. Seeding (`push_*`, `move_tag`, `delete`) goes to Distribution directly with a minted
token, so it neither meets faults nor shows in `faults.requests` or `tokens.requests`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.proxy.content import PushedImage, PushedIndex, Pusher
from tests.proxy.distribution import start_distribution
from tests.proxy.faults import FaultProxy
from tests.proxy.token_issuer import TokenIssuer

USERNAME = "upstream-user"
PASSWORD = "upstream-Pa55"
BIG = 32 * 1024 * 1024


@dataclass
class Upstream:
    url: str
    direct_url: str
    faults: FaultProxy
    tokens: TokenIssuer
    username: str
    password: str
    public: set[str]

    @property
    def service(self) -> str:
        """The `service` of the challenges (the token's audience)."""
        return self.tokens.service

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT` of `url`, as it appears in image references."""
        return self.url.removeprefix("http://")

    def _pusher(self) -> Pusher:
        return Pusher(self.direct_url, self.seed_token)

    def seed_token(self, repo: str) -> str:
        """A token for full access to `repo`, minted without asking the issuer's endpoint."""
        return self.tokens.mint_for("seeder", f"repository:{repo}:pull,push,delete")

    def push_image(
        self, repo: str, tag: str, layer_sizes: Sequence[int] = (1024, 4096)
    ) -> PushedImage:
        """An OCI image: a config and one random layer per size."""
        return self._pusher().image(repo, tag, layer_sizes)

    def push_docker_image(
        self, repo: str, tag: str, layer_sizes: Sequence[int] = (1024, 4096)
    ) -> PushedImage:
        """A Docker schema 2 image."""
        return self._pusher().image(repo, tag, layer_sizes, docker=True)

    def push_artifact(self, repo: str, subject: PushedImage) -> PushedImage:
        """An OCI artifact (a signature, say) whose `subject` is `subject`, by digest."""
        return self._pusher().artifact(repo, subject)

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """Any manifest (its blobs and children pushed already); its digest."""
        pusher = self._pusher()
        with pusher.client(repo) as http:
            return pusher.manifest(http, repo, reference, body, media_type)

    def push_index(self, repo: str, tag: str) -> PushedIndex:
        """An OCI index of linux/amd64 and linux/arm64 images."""
        return self._pusher().index(repo, tag)

    def push_docker_list(self, repo: str, tag: str) -> PushedIndex:
        """A Docker manifest list of two schema 2 images (linux/amd64, linux/arm64)."""
        return self._pusher().index(repo, tag, docker=True)

    def push_big(self, repo: str, tag: str, size: int = BIG) -> PushedImage:
        """An OCI image with one random layer of `size` bytes (32 MiB by default)."""
        return self._pusher().image(repo, tag, (size,))

    def move_tag(
        self, repo: str, tag: str, layer_sizes: Sequence[int] = (1024, 4096)
    ) -> PushedImage:
        """Point `tag` at a new image (another digest), as an upstream release does."""
        return self.push_image(repo, tag, layer_sizes)

    def delete(self, repo: str, digest: str) -> None:
        """Delete a manifest upstream by digest (its tags go with it)."""
        headers = {"Authorization": f"Bearer {self.seed_token(repo)}"}
        deleted = httpx.delete(f"{self.direct_url}/v2/{repo}/manifests/{digest}", headers=headers)
        assert deleted.status_code == 202, deleted.text

    def reset(self) -> None:
        """Faults back to `pass` and counters emptied; token answers back to their defaults."""
        self.faults.reset()
        self.tokens.reset()


@contextlib.contextmanager
def running_upstream(binary: str, workdir: Path) -> Iterator[Upstream]:
    """Issuer, Distribution and proxy, started in that order and stopped in reverse, also
    when a later one fails to start."""
    with contextlib.ExitStack() as stack:
        tokens = TokenIssuer()
        tokens.add_user(USERNAME, PASSWORD)
        tokens.start()
        stack.callback(tokens.stop)
        distribution = start_distribution(
            binary,
            workdir,
            realm=tokens.realm,
            service=tokens.service,
            issuer=tokens.issuer,
            cert_pem=tokens.key.cert_pem,
        )
        stack.callback(distribution.stop)
        faults = FaultProxy(distribution.url)
        faults.start()
        stack.callback(faults.stop)
        yield Upstream(
            faults.url, distribution.url, faults, tokens, USERNAME, PASSWORD, tokens.public
        )
