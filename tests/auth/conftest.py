"""Signing keys and issuers for the token tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from registry.auth.keys import TokenKeys
from registry.auth.tokens import TokenIssuer
from tests.auth.jwt_helpers import ISS, pem_of


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rsa_issuer(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> TokenIssuer:
    path = tmp_path / "rsa.pem"
    path.write_bytes(pem_of(rsa_key))
    return TokenIssuer(TokenKeys.from_pem_file(path), ISS, lifetime_seconds=300)


@pytest.fixture
def hs_keys() -> TokenKeys:
    return TokenKeys.from_secret(b"k" * 32)


@pytest.fixture
def hs_issuer(hs_keys: TokenKeys) -> TokenIssuer:
    return TokenIssuer(hs_keys, ISS, lifetime_seconds=300)
