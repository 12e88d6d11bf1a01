"""RBAC with real clients: "anyone may pull library/*, team A pushes team-a/*, CI pushes with a
token".

One dedicated server with `-cfgdir` manifests: the user `anonymous` (group guests: pull
`^library/`, list the catalog), alice (groups team-a and guests: push and pull `^team-a/`, pull
`^library/`), robot (no password, a static `Token`: push and pull `^ci/`) and the flag admin,
who seeds `library/base:1` with skopeo. Every client then goes through the Docker token flow
(`/token`, anonymous or with Basic credentials) and is refused where RBAC says so; after every
refusal the registry is checked, as the admin, to hold nothing of the refused push.

alice is in guests too: an authenticated user gets only what their own name and groups are
granted (config/examples/70-team-a.yaml), not what `anonymous` gets.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import jwt
import pytest
from oras.client import OrasClient  # type: ignore[import-untyped]

from tests.clients.daemons import Dockerd
from tests.clients.images import DOCKER_MANIFEST, OCI_MANIFEST, OCILayout, random_layer
from tests.clients.test_docker import import_image, stored_auths
from tests.clients.tools import Skopeo, describe, require_binary
from tests.manifests import manifest_doc
from tests.server import RunningRegistry, start

pytestmark = pytest.mark.clients

ALICE_PASSWORD = "alice-Pa55-word"
ROBOT_TOKEN = "ci-robot-static-token-3f9a1c0d7b2e"
ACCEPT = {"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"}
ARTIFACT_TYPE = "application/vnd.example.simple-registry.ci.v1+text"


def _manifests() -> str:
    def binding(name: str, kind: str, subject: str, role: str, scope: str) -> str:
        spec: dict[str, object] = {
            "subjects": [{"kind": kind, "name": subject}],
            "roleRef": {"name": role},
            "scopes": [scope],
        }
        return manifest_doc("RoleBinding", name, spec)

    alice_hash = bcrypt.hashpw(ALICE_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    robot_sha = hashlib.sha256(ROBOT_TOKEN.encode()).hexdigest()
    content = ["tags", "blobs", "manifests"]
    docs = [
        manifest_doc("Role", "pull", {"resources": content, "verbs": ["pull"]}),
        manifest_doc("Role", "push", {"resources": content, "verbs": ["pull", "push"]}),
        manifest_doc("Role", "list-catalog", {"resources": ["catalog"], "verbs": ["GET"]}),
        manifest_doc("User", "anonymous", {"groups": ["guests"]}),
        manifest_doc("User", "alice", {"passwordHash": alice_hash, "groups": ["team-a", "guests"]}),
        manifest_doc("User", "robot", {}),
        manifest_doc("Token", "robot-ci", {"username": "robot", "valueSha256": robot_sha}),
        binding("guests-pull-library", "Group", "guests", "pull", "^library/"),
        binding("guests-catalog", "Group", "guests", "list-catalog", "^$"),
        binding("team-a-push", "Group", "team-a", "push", "^team-a/"),
        binding("robot-push-ci", "User", "robot", "push", "^ci/"),
    ]
    return "\n---\n".join(docs) + "\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    root = tmp_path_factory.mktemp("rbac-clients")
    (root / "cfg").mkdir()
    (root / "cfg" / "rbac.yaml").write_text(_manifests())
    running = start(root / "data", "-cfgdir", str(root / "cfg"))
    yield running
    running.stop()


@dataclass(frozen=True)
class Seeded:
    ref: str  # HOST/library/base:1
    digest: str  # its manifest digest


@pytest.fixture(scope="module")
def base_image(server: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """`library/base:1`, pushed by the admin with skopeo: a tiny image docker can unpack."""
    root = tmp_path_factory.mktemp("seed")
    layout = OCILayout(root / "layout")
    image = layout.add_image([random_layer(2048)])
    layout.tag(image.manifest, "1")
    seeder = Skopeo(require_binary("skopeo"), root / "skopeo")
    ref = f"{server.host}/library/base:1"
    seeder.copy(
        f"oci:{layout.root}:1",
        f"docker://{ref}",
        "--preserve-digests",
        "--dest-creds",
        f"{server.username}:{server.password}",
        "--dest-tls-verify=false",
    )
    assert manifest_digest(server, "library/base", "1") == image.manifest.digest
    return Seeded(ref, image.manifest.digest)


# --- registry state, seen by the admin --------------------------------------------------------


def manifest_digest(server: RunningRegistry, repo: str, reference: str) -> str | None:
    """The digest the registry serves for `repo:reference`, or None when there is none."""
    with server.client() as http:
        head = http.head(f"/v2/{repo}/manifests/{reference}", headers=ACCEPT)
    if head.status_code == 404:
        return None
    assert head.status_code == 200, f"HEAD {repo}:{reference} as admin: {head.status_code}"
    digest: str = head.headers["docker-content-digest"]
    return digest


def assert_nothing_pushed(server: RunningRegistry, repo: str, tag: str, *blobs: str) -> None:
    """After a refused push: no tag, no repository, none of the blobs linked in it."""
    assert manifest_digest(server, repo, tag) is None, f"{repo}:{tag} exists after a refusal"
    with server.client() as http:
        tags = http.get(f"/v2/{repo}/tags/list")
        assert tags.status_code == 404, f"{repo} exists: {tags.text}"
        for blob in blobs:
            assert http.head(f"/v2/{repo}/blobs/{blob}").status_code == 404, blob


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The lowercased output of a client command that must have failed."""
    assert result.returncode != 0, f"the command succeeded:\n{describe(result)}"
    return f"{result.stdout}\n{result.stderr}".lower()


def is_auth_error(output: str) -> bool:
    return any(word in output for word in ("unauthorized", "denied", "authentication required"))


# --- docker -----------------------------------------------------------------------------------


def docker_push(dockerd: Dockerd, config: Path, ref: str) -> str:
    """Push and return the digest dockerd reports."""
    out = dockerd.cli(config, "push", ref).stdout
    tag = ref.rsplit(":", 1)[1]
    for line in out.splitlines():
        if line.startswith(f"{tag}: digest: "):
            return line.split()[2]
    raise AssertionError(f"no digest line in the push output:\n{out}")


def docker_layers(dockerd: Dockerd, config: Path, ref: str) -> list[str]:
    inspect = json.loads(dockerd.cli(config, "image", "inspect", ref).stdout)[0]
    layers: list[str] = inspect["RootFS"]["Layers"]
    return layers


def docker_login(dockerd: Dockerd, config: Path, host: str, user: str, secret: str) -> int:
    login = dockerd.cli(
        config, "login", host, "-u", user, "--password-stdin", input=secret + "\n", check=False
    )
    return login.returncode


def test_docker_anonymous_pulls_library_and_cannot_push(
    dockerd: Dockerd, server: RunningRegistry, base_image: Seeded, tmp_path: Path
) -> None:
    config = tmp_path / "docker-config"
    dockerd.cli(config, "rmi", "-f", base_image.ref, check=False)
    try:
        pulled = dockerd.cli(config, "pull", base_image.ref)
        assert f"Digest: {base_image.digest}" in pulled.stdout, pulled.stdout
        inspect = json.loads(dockerd.cli(config, "image", "inspect", base_image.ref).stdout)[0]
        assert inspect["RepoDigests"] == [f"{server.host}/library/base@{base_image.digest}"]
        assert stored_auths(config) == {}  # no login happened: the anonymous token flow

        new = f"{server.host}/library/x:1"
        import_image(dockerd, config, new, size=4096)
        push = dockerd.cli(config, "push", new, check=False)
        assert is_auth_error(refused(push)), push.stderr
        assert_nothing_pushed(server, "library/x", "1")

        # Not library/: anonymous may not even read it.
        private = dockerd.cli(config, "pull", f"{server.host}/team-a/app:1", check=False)
        assert refused(private)
    finally:
        dockerd.cli(config, "rmi", "-f", base_image.ref, f"{server.host}/library/x:1", check=False)


def test_docker_team_member_pushes_only_her_namespace(
    dockerd: Dockerd, server: RunningRegistry, base_image: Seeded, tmp_path: Path
) -> None:
    config = tmp_path / "docker-config"
    own = f"{server.host}/team-a/app:1"
    other = f"{server.host}/team-b/app:1"
    assert docker_login(dockerd, config, server.host, "alice", "wrong-password") != 0
    assert server.host not in stored_auths(config)
    assert docker_login(dockerd, config, server.host, "alice", ALICE_PASSWORD) == 0
    assert server.host in stored_auths(config)
    try:
        image_id = import_image(dockerd, config, own, size=4096)
        digest = docker_push(dockerd, config, own)
        assert manifest_digest(server, "team-a/app", "1") == digest

        dockerd.cli(config, "rmi", own)
        assert dockerd.cli(config, "image", "inspect", own, check=False).returncode != 0
        pulled = dockerd.cli(config, "pull", own)
        assert f"Digest: {digest}" in pulled.stdout, pulled.stdout
        inspect = json.loads(dockerd.cli(config, "image", "inspect", own).stdout)[0]
        assert inspect["Id"] == image_id

        # The same image into team-b: dockerd tries a mount from team-a/app, then uploads.
        dockerd.cli(config, "tag", own, other)
        with server.client() as http:
            manifest = http.get("/v2/team-a/app/manifests/1", headers=ACCEPT).json()
        blobs = [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
        push = dockerd.cli(config, "push", other, check=False)
        assert is_auth_error(refused(push)), push.stderr
        assert_nothing_pushed(server, "team-b/app", "1", *blobs)

        # Logged in as alice, library/ is still readable (she is in guests).
        dockerd.cli(config, "rmi", "-f", base_image.ref, check=False)
        pulled = dockerd.cli(config, "pull", base_image.ref)
        assert f"Digest: {base_image.digest}" in pulled.stdout, pulled.stdout
    finally:
        dockerd.cli(config, "rmi", "-f", own, other, base_image.ref, check=False)


def test_docker_robot_logs_in_with_its_static_token(
    dockerd: Dockerd, server: RunningRegistry, tmp_path: Path
) -> None:
    config = tmp_path / "docker-config"
    ci = f"{server.host}/ci/app:1"
    elsewhere = f"{server.host}/team-a/robot:1"
    assert docker_login(dockerd, config, server.host, "robot", "not-the-token") != 0
    assert docker_login(dockerd, config, server.host, "robot", ROBOT_TOKEN) == 0
    assert server.host in stored_auths(config)
    try:
        import_image(dockerd, config, ci, size=4096)
        digest = docker_push(dockerd, config, ci)
        assert manifest_digest(server, "ci/app", "1") == digest

        dockerd.cli(config, "tag", ci, elsewhere)
        push = dockerd.cli(config, "push", elsewhere, check=False)
        assert is_auth_error(refused(push)), push.stderr
        assert_nothing_pushed(server, "team-a/robot", "1")
    finally:
        dockerd.cli(config, "rmi", "-f", ci, elsewhere, check=False)


# --- skopeo -----------------------------------------------------------------------------------


def test_skopeo_copies_library_into_team_namespace(
    skopeo: Skopeo, server: RunningRegistry, base_image: Seeded
) -> None:
    """Registry to registry: the source is read anonymously, the destination written as alice."""
    source = f"docker://{base_image.ref}"
    alice = ["--src-no-creds", "--src-tls-verify=false", "--dest-tls-verify=false"]
    alice += ["--dest-creds", f"alice:{ALICE_PASSWORD}", "--preserve-digests"]

    skopeo.copy(source, f"docker://{server.host}/team-a/base:1", *alice)
    assert manifest_digest(server, "team-a/base", "1") == base_image.digest

    denied = skopeo(
        "copy", "--retry-times", "0", *alice, source, f"docker://{server.host}/team-b/base:1",
        check=False,
    )  # fmt: skip
    assert is_auth_error(refused(denied)), denied.stderr
    assert_nothing_pushed(server, "team-b/base", "1")

    anonymous = ["--no-creds", "--tls-verify=false"]
    inspected = json.loads(skopeo("inspect", *anonymous, source).stdout)
    assert inspected["Digest"] == base_image.digest
    assert inspected["Name"] == f"{server.host}/library/base"
    private = skopeo("inspect", *anonymous, f"docker://{server.host}/team-a/base:1", check=False)
    assert is_auth_error(refused(private)), private.stderr


# --- oras-py ----------------------------------------------------------------------------------


def test_oras_robot_pushes_a_private_ci_artifact(
    server: RunningRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The robot logs in with its static token as the password and pushes to ci/; ci/ is not
    public, so an anonymous pull (oras-py's token backend: an anonymous token from /token, cut
    down to nothing) is refused, while the robot, from its stored login, pulls it back.

    The robot uses oras-py's Basic backend, as tests/clients/test_oras.py does: its token
    backend keeps the first token it gets (pull, from the HEAD of a blob) and re-sends it on the
    upload's `insufficient_scope` 401 instead of asking /token for push.
    """
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    # oras-py keeps logins in ~/.docker/config.json (it ignores DOCKER_CONFIG): a private HOME.
    robot_home = tmp_path / "robot-home"
    monkeypatch.setenv("HOME", str(robot_home))
    source = tmp_path / "source"
    source.mkdir()
    monkeypatch.chdir(source)  # oras only pushes files under the working directory
    report = source / "report.txt"
    report.write_text("build 1: all green\n" * 20)
    target = f"{server.host}/ci/artifacts:1"

    robot = OrasClient(hostname=server.host, insecure=True, auth_backend="basic")
    login = robot.login(username="robot", password=ROBOT_TOKEN, hostname=server.host)
    assert login == {"Status": "Login Succeeded"}  # oras-py only stores the credentials
    stored = json.loads((robot_home / ".docker" / "config.json").read_text())
    assert server.host in stored["auths"]
    pushed = robot.push(target, files=[f"report.txt:{ARTIFACT_TYPE}"], quiet=True)
    assert pushed.status_code == 201, pushed.text
    digest = pushed.headers["Docker-Content-Digest"]
    assert manifest_digest(server, "ci/artifacts", "1") == digest

    monkeypatch.setenv("HOME", str(tmp_path / "anonymous-home"))
    anonymous_out = tmp_path / "anonymous"
    anonymous_out.mkdir()
    anonymous = OrasClient(hostname=server.host, insecure=True)  # token backend, no credentials
    with pytest.raises(ValueError, match=r"/v2/ci/artifacts/manifests/1"):
        anonymous.pull(target, outdir=str(anonymous_out))
    assert list(anonymous_out.iterdir()) == []
    claims = jwt.decode(anonymous.auth.token, options={"verify_signature": False})
    assert claims["sub"] == "anonymous"
    assert claims.get("access") in (None, [])  # the requested ci/ pull was not granted

    monkeypatch.setenv("HOME", str(robot_home))
    robot_out = tmp_path / "robot"
    robot_out.mkdir()
    again = OrasClient(hostname=server.host, insecure=True, auth_backend="basic")
    files = [Path(p) for p in again.pull(target, outdir=str(robot_out))]
    assert [p.name for p in files] == ["report.txt"]
    assert (robot_out / "report.txt").read_bytes() == report.read_bytes()
    layer = again.get_manifest(target)["layers"][0]
    assert (layer["mediaType"], layer["size"]) == (ARTIFACT_TYPE, report.stat().st_size)
