"""The command line: flags, environment fallbacks, errors without tracebacks, genhash, TLS."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import bcrypt
import httpx
import pytest

from tests.oci import digest_of, push_image
from tests.server import PASSWORD, RunningRegistry, listening_url


def _run(
    *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
    )


def test_version() -> None:
    result = _run("version")
    assert result.returncode == 0
    assert result.stdout.startswith("simple-registry\tv")


@pytest.mark.parametrize(
    "command",
    [[], ["-h"], ["serve", "-h"], ["serve", "--help"], ["genhash", "-h"], ["version", "-h"]],
)
def test_help(command: list[str]) -> None:
    result = _run(*command)
    assert "usage" in (result.stdout + result.stderr).lower()
    assert result.returncode == (2 if not command else 0)


def test_serve_help_names_every_flag() -> None:
    text = _run("serve", "-h").stdout
    for flag in (
        "-addr",
        "-datadir",
        "-adminname",
        "-adminpwd",
        "-adminpwdfile",
        "-certfile",
        "-keyfile",
        "-cert",
        "-key",
        "-workers",
        "-cfgdir",
        "-anonymous",
        "-metricsaddr",
        "-loglevel",
        "-logformat",
    ):
        assert flag in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "unknown command"),
        (["serve", "-datadir", "{tmp}"], "no admin password"),
        (["serve", "-adminpwdfile", "{tmp}/missing"], "cannot read -adminpwdfile"),
        (["serve", "-adminpwd", "x", "-workers", "many"], "-workers must be a whole number"),
        (["serve", "-adminpwd", "x", "-workers", "0"], "-workers must be between"),
        (["serve", "-adminpwd", "x", "-addr", "nowhere"], "-addr must be HOST:PORT"),
        (["serve", "-adminpwd", "x", "-certfile", "{tmp}/c.pem"], "go together"),
        (
            ["serve", "-adminpwd", "x", "-certfile", "{tmp}/c", "-keyfile", "{tmp}/k"],
            "no such file",
        ),
        (["serve", "-adminpwd", ""], "empty"),
        (["serve", "-adminpwd", "x", "-loglevel", "loud"], "-loglevel must be one of"),
        (["serve", "-bogus"], "unrecognized arguments"),
    ],
)
def test_errors_are_one_line_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = _run(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


_BAD_FLAGS = ("-workers", "0", "-tokentimeout", "soon")
_BAD_VARIABLES = {"SIMPLE_REGISTRY_BODYTIMEOUT": "x"}
_BAD_FLAG_LINES = [
    "simple-registry: -workers must be between 1 and 256",
    "simple-registry: -tokentimeout takes whole seconds, not 'soon'",
    "simple-registry: -bodytimeout takes seconds, not 'x'",
]


def test_every_bad_flag_and_variable_is_reported_in_one_run(tmp_path: Path) -> None:
    result = _run(
        "serve", "-adminpwd", "x", "-datadir", str(tmp_path), *_BAD_FLAGS, env=_BAD_VARIABLES
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        *_BAD_FLAG_LINES,
        "simple-registry: 3 configuration errors",
    ]


def test_bad_flags_are_reported_with_the_manifests_mistakes(tmp_path: Path) -> None:
    """The manifests' mistakes first, then the flags'; the checks that need the manifests'
    users (is there any User?) are left out rather than reported wrongly."""
    users = tmp_path / "cfg" / "users.yaml"
    users.parent.mkdir()
    users.write_text(
        "apiVersion: simple-registry.dev/v1\nkind: User\nmetadata: {name: alice}\n"
        "spec: {groups: admins}\n"
    )
    result = _run("serve", "-cfgdir", str(users.parent), *_BAD_FLAGS, env=_BAD_VARIABLES)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f'simple-registry: {users}, document 1 (User "alice"): spec.groups: expected a list '
        "of strings, got a string",
        *_BAD_FLAG_LINES,
        "simple-registry: 4 configuration errors",
    ]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_is_a_clear_error(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path, workers: str
) -> None:
    taken = start_registry("-workers", "2")  # its sockets use SO_REUSEPORT
    result = _run(
        "serve",
        "-adminpwd",
        "x",
        "-datadir",
        str(tmp_path),
        "-addr",
        taken.host,
        "-workers",
        workers,
    )
    assert result.returncode != 0
    assert "cannot listen on" in result.stderr
    assert "Traceback" not in result.stderr


def _only_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a start-up failure prints: no traceback, and no "listening on" before it."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# The tests run as root, whom permission bits do not stop, so an unusable data directory is
# made with a regular file where a directory must be (ENOTDIR and EEXIST bind root too): the
# file to create, and the message, for a data directory `data` (`file/data` for the first).
_DATA_DIR_PROBLEMS = {
    "under a file": ("file", "cannot use the data directory {d}: Not a directory"),
    "storage scratch is a file": (
        "data/_tmp",
        "cannot use the data directory {d}: {d}/_tmp: File exists",
    ),
    "coordination is a file": (
        "data/_coord",
        "cannot use the data directory {d}: {d}/_coord/locks: Not a directory",
    ),
    "secret folder is a file": (
        "data/_secrets",
        "cannot keep the token secret in {d}/_secrets: Not a directory",
    ),
}


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("problem", list(_DATA_DIR_PROBLEMS))
def test_data_directory_problem_is_one_line_before_listening(
    tmp_path: Path, problem: str, workers: str
) -> None:
    file, expected = _DATA_DIR_PROBLEMS[problem]
    (tmp_path / file).parent.mkdir(exist_ok=True)
    (tmp_path / file).write_text("")
    datadir = tmp_path / ("file" if file == "file" else "") / "data"
    result = _run(
        "serve", "-adminpwd", "x", "-addr", "127.0.0.1:0", "-workers", workers,
        "-datadir", str(datadir),
    )  # fmt: skip
    assert _only_line(result) == "simple-registry: " + expected.format(d=datadir)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_unusable_tls_files_are_one_line_before_listening(tmp_path: Path, workers: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    result = _run(
        "serve", "-adminpwd", "x", "-addr", "127.0.0.1:0", "-workers", workers,
        "-datadir", str(tmp_path / "data"), "-certfile", str(garbage), "-keyfile", str(garbage),
    )  # fmt: skip
    assert _only_line(result) == (
        f"simple-registry: cannot use TLS certificate {garbage} and key {garbage}: "
        "expected a PEM certificate and its PEM private key"
    )


def test_unusable_token_key_is_one_line_before_listening(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    result = _run(
        "serve", "-adminpwd", "x", "-addr", "127.0.0.1:0", "-workers", "2",
        "-datadir", str(tmp_path / "data"), "-tokenkeyfile", str(garbage),
    )  # fmt: skip
    assert _only_line(result).startswith(
        f"simple-registry: token key {garbage}: not a PEM private key"
    )


def test_address_not_on_this_host_is_named(tmp_path: Path) -> None:
    # 192.0.2.0/24 is reserved for documentation: no interface here has it.
    result = _run(
        "serve", "-adminpwd", "x", "-addr", "192.0.2.1:5000", "-datadir", str(tmp_path),
    )  # fmt: skip
    assert _only_line(result) == (
        "simple-registry: cannot listen on 192.0.2.1:5000: Cannot assign requested address"
    )


def test_a_worker_that_cannot_start_prints_one_line(tmp_path: Path) -> None:
    """What `serve` could not check before spawning (the data directory replaced by a file
    since, say) still ends a worker with one line and status 2, not multiprocessing's
    traceback. The worker entry point is run directly, as a spawned worker runs it."""
    (tmp_path / "data").write_text("")
    script = (
        "import sys; from pathlib import Path; from hypercorn.config import Sockets;"
        "from registry.config.settings import Settings;"
        "from registry.server import _spawned_worker, hypercorn_config;"
        "settings = Settings(datadir=Path(sys.argv[1]));"
        "_spawned_worker(settings, hypercorn_config(settings), Sockets([], [], []), None)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert _only_line(result) == (
        f"simple-registry: cannot start a worker: {tmp_path / 'data'}: File exists"
    )


def test_genhash_from_stdin_strips_one_newline() -> None:
    result = _run("genhash", stdin="correct horse\n")
    assert result.returncode == 0
    hashed = result.stdout.strip().encode()
    assert bcrypt.checkpw(b"correct horse", hashed)
    assert not bcrypt.checkpw(b"correct horse\n", hashed)


def test_genhash_refuses_empty_password() -> None:
    result = _run("genhash", stdin="\n")
    assert result.returncode != 0
    assert "empty" in result.stderr


def _serve_with_env(
    tmp_path: Path, env: dict[str, str], *args: str
) -> tuple[subprocess.Popen[str], str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_REGISTRY_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "registry", "serve", *args],
        env={**base, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        url = listening_url(line)
        if url:
            return process, url
    process.wait()
    raise AssertionError("server did not start")


def test_environment_fallbacks_and_flag_precedence(tmp_path: Path) -> None:
    env = {
        "SIMPLE_REGISTRY_ADDR": "127.0.0.1:0",
        "SIMPLE_REGISTRY_DATADIR": str(tmp_path / "from-env"),
        "SIMPLE_REGISTRY_ADMINNAME": "root",
        "SIMPLE_REGISTRY_ADMINPWD": "env-password",
    }
    process, url = _serve_with_env(tmp_path, env, "--adminpwd", "flag-password")
    try:
        assert httpx.get(f"{url}/v2/", auth=("root", "flag-password")).status_code == 200
        assert httpx.get(f"{url}/v2/", auth=("root", "env-password")).status_code == 401
        assert httpx.get(f"{url}/v2/", auth=("admin", "flag-password")).status_code == 401
        assert (tmp_path / "from-env").is_dir()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_password_file_drops_the_trailing_newline(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    server = start_registry("-adminpwdfile", str(secret), password=None)
    assert httpx.get(f"{server.url}/v2/", auth=("admin", "from-a-file")).status_code == 200
    assert httpx.get(f"{server.url}/v2/", auth=("admin", "from-a-file\n")).status_code == 401


def test_sigterm_stops_the_server(start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry("-workers", "2")
    assert server.stop() == 0


def test_workers_share_uploads(start_registry: Callable[..., RunningRegistry]) -> None:
    """Each chunk on a new connection, so consecutive chunks reach different worker processes."""
    server = start_registry("-workers", "3")
    data = os.urandom(40 * 1000)
    with server.client() as http:
        location = http.post("/v2/multi/blobs/uploads/").headers["Location"]
    for i in range(0, len(data), 1000):
        with server.client() as fresh:
            r = fresh.patch(
                location, content=data[i : i + 1000], headers={"Content-Range": f"{i}-{i + 999}"}
            )
            assert r.status_code == 202
    with server.client() as http:
        assert http.put(location, params={"digest": digest_of(data)}).status_code == 201
        assert http.get(f"/v2/multi/blobs/{digest_of(data)}").content == data
        pushed = push_image(http, "multi", "v1")
    with server.client() as other:
        assert other.get("/v2/multi/manifests/v1").content == pushed.body


def test_https(start_registry: Callable[..., RunningRegistry], tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server = start_registry("-cert", str(cert), "-key", str(key))
    assert server.url.startswith("https://")
    context = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=server.url, verify=context, auth=("admin", PASSWORD)) as http:
        assert http.get("/v2/").status_code == 200
    with pytest.raises(httpx.ConnectError), httpx.Client(base_url=server.url) as untrusted:
        untrusted.get("/v2/")
    host, port = server.host.split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not sock.recv(100).startswith(b"HTTP/1.1 200")


def test_genhash_on_a_terminal_reads_without_echo() -> None:
    import pty

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "registry", "genhash"],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    output = b""
    while b"password" not in output.lower():
        output += os.read(controller, 1024)
    os.write(controller, b"typed secret\n")
    while True:
        try:
            chunk = os.read(controller, 1024)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    assert b"typed secret" not in output  # not echoed
    hashed = output.strip().splitlines()[-1].strip()
    assert bcrypt.checkpw(b"typed secret", hashed)


def test_concurrent_pushes_of_one_blob_and_one_tag(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = start_registry("-workers", "2")
    data = os.urandom(200_000)

    def push(i: int) -> tuple[int, str]:
        with server.client() as http:
            r = http.post(
                "/v2/race/blobs/uploads/", params={"digest": digest_of(data)}, content=data
            )
            assert r.status_code == 201
            pushed = push_image(http, "race", "same-tag")
            return r.status_code, pushed.digest

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(push, range(8)))
    with server.client() as http:
        assert http.get(f"/v2/race/blobs/{digest_of(data)}").content == data
        final = http.get("/v2/race/manifests/same-tag")
        assert final.status_code == 200
        assert final.headers["Docker-Content-Digest"] in {d for _, d in results}
        for _, digest in results:
            assert http.head(f"/v2/race/manifests/{digest}").status_code == 200


def test_serve_refuses_a_bad_manifest_naming_file_and_field(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "users.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: User\nmetadata: {name: a}\nspec: {groups: []}\n"
        "---\napiVersion: simple-registry.dev/v1\nkind: User\nmetadata: {name: b}\n"
        "spec: {groups: admins}\n"
    )
    result = _run("serve", "-cfgdir", str(cfg), "-datadir", str(tmp_path / "data"))
    assert result.returncode == 2
    assert "users.yaml, document 2" in result.stderr
    assert "spec.groups" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_serve_reports_every_manifest_error_then_their_count(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    for name in ("a", "b"):
        (cfg / f"{name}.yaml").write_text(
            f"apiVersion: simple-registry.dev/v1\nkind: User\nmetadata: {{name: {name}}}\n"
            "spec: {groups: admins}\n"
        )
    result = _run("serve", "-cfgdir", str(cfg), "-datadir", str(tmp_path / "data"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(",")[0] for line in lines[:2]] == [
        f"simple-registry: {cfg / 'a.yaml'}",
        f"simple-registry: {cfg / 'b.yaml'}",
    ]
    assert lines[2:] == ["simple-registry: 2 configuration errors"]
    assert not (tmp_path / "data").exists()


def test_the_ui_and_a_cache_configured_in_yaml_load_without_a_word(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """`spec.web.ui: true` turns the web UI on (the seed's switch), and the unused `spec.proxy`
    section is the one setting that is logged as ignored."""
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "main.yaml").write_text(
        "apiVersion: simple-registry.dev/v1\nkind: Configuration\nmetadata: {name: main}\n"
        "spec: {web: {ui: true}, proxy: {anything: 1}}\n---\n"
        "apiVersion: simple-registry.dev/v1\nkind: PullThroughCache\nmetadata: {name: hub}\n"
        "spec: {upstream: {url: 'https://up.example', hosts: [docker.io], maxStale: 1h}, "
        "scopes: ['^hub/'], prefix: hub/}\n"
    )
    server = start_registry("-cfgdir", str(cfg))
    warned = [line for line in server.output if "main.yaml" in line]
    assert len(warned) == 1
    assert "document 1" in warned[0] and "spec.proxy" in warned[0]
    with httpx.Client(base_url=server.url, verify=False) as client:
        assert client.get("/").headers["location"] == "/ui/"
        assert client.get("/ui/").headers["content-type"] == "text/html; charset=utf-8"


def test_plaintext_token_value_loads_with_a_warning(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "robot.yaml").write_text(
        "apiVersion: simple-registry.jlsalvador.online/v1beta1\nkind: User\n"
        "metadata: {name: robot}\nspec: {}\n---\n"
        "apiVersion: simple-registry.jlsalvador.online/v1beta1\nkind: Token\n"
        "metadata: {name: ci}\nspec: {username: robot, value: plain-token-value-123}\n"
    )
    server = start_registry("-cfgdir", str(cfg))
    assert any("valueSha256" in line for line in server.output)
    assert not any("plain-token-value-123" in line for line in server.output)
    r = httpx.get(
        f"{server.url}/v2/_catalog",
        headers={"Authorization": "Bearer plain-token-value-123"},
    )
    assert r.status_code == 403  # the token works (robot is known) but grants nothing here
