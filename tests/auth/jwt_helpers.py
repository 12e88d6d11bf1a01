"""Keys and hand-made tokens shared by the tests of registry.auth's token modules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from registry.auth.keys import TokenKeys

NOW = 1_700_000_000.0
ISS = "simple-registry"
AUD = "registry.example:5000"


def pem_of(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value).encode())


def sign_hs256(keys: TokenKeys, claims: dict[str, Any]) -> str:
    """HS256 by hand, so that claims PyJWT refuses to encode (a list `iss`) can be signed."""
    assert isinstance(keys.signing_key, bytes) and keys.algorithm == "HS256"
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT'})}.{b64json(claims)}"
    mac = hmac.new(keys.signing_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"
