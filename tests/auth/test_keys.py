"""Signing keys: PEM files, secrets, and the secret generated once in the data directory."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from registry.auth import keys as keys_module
from registry.auth.keys import (
    SECRET_BYTES,
    TokenKeys,
    load_or_create_secret,
    weak_secret_warning,
)
from registry.auth.tokens import TokenIssuer
from registry.config.settings import ConfigError
from tests.auth.jwt_helpers import AUD, ISS, pem_of

# --- keys ------------------------------------------------------------------------------------


def test_pem_errors_are_clear(tmp_path: Path) -> None:
    cases: dict[str, tuple[bytes, str]] = {
        "ed25519.pem": (pem_of(ed25519.Ed25519PrivateKey.generate()), "Ed25519PrivateKey"),
        "small.pem": (pem_of(rsa.generate_private_key(65537, 1024)), "at least 2048"),
        "k1.pem": (pem_of(ec.generate_private_key(ec.SECP256K1())), "secp256k1"),
        "garbage.pem": (b"not a key", "not a PEM private key"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match=message):
            TokenKeys.from_pem_file(tmp_path / name)
    with pytest.raises(ConfigError, match="cannot read"):
        TokenKeys.from_pem_file(tmp_path / "missing.pem")


def test_encrypted_pem_needs_its_password(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    path = tmp_path / "enc.pem"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=str(path)):
        TokenKeys.from_pem_file(path)
    assert TokenKeys.from_pem_file(path, password=b"pw").algorithm == "ES256"


def test_keys_do_not_show_in_repr() -> None:
    keys = TokenKeys.from_secret(b"super-secret-value-0123456789abcdef")
    assert repr(keys) == "TokenKeys(HS256, <redacted>)"
    with pytest.raises(ConfigError):
        TokenKeys.from_secret(b"")


def test_weak_secret_warning() -> None:
    assert weak_secret_warning(b"x" * SECRET_BYTES) is None
    warning = weak_secret_warning(b"hunter2")
    assert warning is not None and "7 bytes" in warning and "hunter2" not in warning


def test_short_secret_signs_without_pyjwt_warnings() -> None:
    # pytest turns warnings into errors here: PyJWT's short-key warning must not fire.
    issuer = TokenIssuer(TokenKeys.from_secret(b"short"), ISS)
    assert issuer.verify(issuer.issue("a", AUD, []).token, AUD).subject == "a"


# --- the generated secret --------------------------------------------------------------------


def test_secret_is_created_once_and_private(tmp_path: Path) -> None:
    secret = load_or_create_secret(tmp_path)
    assert len(secret) == SECRET_BYTES
    path = tmp_path / "_secrets" / "token-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_or_create_secret(tmp_path) == secret
    assert [p.name for p in path.parent.iterdir()] == ["token-secret"]  # no temp files left


def test_empty_secret_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "_secrets").mkdir(mode=0o700)
    (tmp_path / "_secrets" / "token-secret").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty"):
        load_or_create_secret(tmp_path)


def _race(datadir: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put(load_or_create_secret(Path(datadir)))


def test_concurrent_workers_agree_on_one_secret(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    count = 6
    barrier = context.Barrier(count)
    results = context.Queue()
    workers = [
        context.Process(target=_race, args=(str(tmp_path / "data"), barrier, results))
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    secrets = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    assert len(set(secrets)) == 1
    assert len(secrets[0]) == SECRET_BYTES
    path = tmp_path / "data" / "_secrets" / "token-secret"
    assert path.read_bytes() == secrets[0]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["token-secret"]


def test_a_late_writer_reads_the_winners_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deterministic version of the race: the file appears after this process looked for it.
    winner = load_or_create_secret(tmp_path)
    real_read = keys_module._read_secret
    calls: list[Path] = []

    def read_missing_first(path: Path) -> bytes | None:
        calls.append(path)
        return None if len(calls) == 1 else real_read(path)

    monkeypatch.setattr(keys_module, "_read_secret", read_missing_first)
    assert load_or_create_secret(tmp_path) == winner
    assert len(calls) == 2
    assert [p.name for p in (tmp_path / "_secrets").iterdir()] == ["token-secret"]
