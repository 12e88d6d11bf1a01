"""Tokens: scopes as clients ask for them, issuing and verifying access and refresh tokens."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from registry.auth.keys import TokenKeys
from registry.auth.tokens import (
    LEEWAY_SECONDS,
    Access,
    InvalidToken,
    TokenIssuer,
    allows,
    parse_scope,
    parse_scopes,
)
from tests.auth.jwt_helpers import AUD, ISS, NOW, b64, b64json, pem_of, sign_hs256

PULL_FOO = [Access("repository", "foo", ("pull",))]


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISS,
        "sub": "alice",
        "aud": AUD,
        "exp": int(NOW) + 300,
        "nbf": int(NOW),
        "iat": int(NOW),
        "jti": "0" * 32,
        "use": "access",
        "access": [{"type": "repository", "name": "foo", "actions": ["pull"]}],
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _rejected(issuer: TokenIssuer, token: str, now: float = NOW, audience: str = AUD) -> str:
    with pytest.raises(InvalidToken) as caught:
        issuer.verify(token, audience, now=now)
    return caught.value.reason


# --- scopes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("repository:foo:pull", [Access("repository", "foo", ("pull",))]),
        ("repository:foo:pull,push", [Access("repository", "foo", ("pull", "push"))]),
        ("repository:a/b/c:pull", [Access("repository", "a/b/c", ("pull",))]),
        ("repository:my-org/app.v2:delete", [Access("repository", "my-org/app.v2", ("delete",))]),
        ("registry:catalog:*", [Access("registry", "catalog", ("*",))]),
        ("repository(plugin):foo/bar:pull", [Access("repository", "foo/bar", ("pull",))]),
        ("repository:foo:pull,,push,pull", [Access("repository", "foo", ("pull", "push"))]),
        (
            "repository:foo:pull registry:catalog:*  repository:a/b:push",
            [
                Access("repository", "foo", ("pull",)),
                Access("registry", "catalog", ("*",)),
                Access("repository", "a/b", ("push",)),
            ],
        ),
        (
            "repository:foo:pull repository:foo:push,pull",
            [Access("repository", "foo", ("pull", "push"))],
        ),
        ("", []),
    ],
)
def test_scopes_parse(text: str, expected: list[Access]) -> None:
    assert parse_scope(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "repository",
        "repository:foo",
        ":foo:pull",
        "repository::pull",
        "repository:foo:",
        "repository:foo:,",
        "Repository:foo:pull",
        "repository(:foo:pull",
        "repository(a)(b):foo:pull",
        "repository:Foo:pull",  # uppercase is not in the name grammar
        "repository:../etc:pull",
        "repository:_secrets/x:pull",
        "repository:localhost:5000/foo:pull",  # a host prefix is never one of our names
        "repository:foo:pull;rm",
        "repository:foo:PULL",
        "registry:cat alog:*",
    ],
)
def test_malformed_scopes_are_set_aside_not_fatal(text: str) -> None:
    parsed = parse_scopes([f"{text} repository:ok:pull"])
    assert parsed.access[-1] == Access("repository", "ok", ("pull",))
    assert all(entry.name != "foo" for entry in parsed.access)
    assert parsed.malformed


def test_several_scope_parameters_merge_and_malformed_are_truncated() -> None:
    parsed = parse_scopes(["repository:foo:pull", "repository:foo:push " + "x" * 1000])
    assert parsed.access == [Access("repository", "foo", ("pull", "push"))]
    assert parsed.malformed == ["x" * 200]


def test_access_prints_as_a_scope() -> None:
    assert str(Access("repository", "a/b", ("pull", "push"))) == "repository:a/b:pull,push"


def test_allows() -> None:
    access = (
        Access("repository", "foo", ("pull",)),
        Access("repository", "a/b", ("*",)),
        Access("registry", "catalog", ("*",)),
        Access("repository", "none", ()),
    )
    assert allows(access, "repository", "foo", "pull")
    assert not allows(access, "repository", "foo", "push")
    assert not allows(access, "repository", "foo", "*")
    assert not allows(access, "repository", "foo/bar", "pull")
    assert not allows(access, "repository", "fo", "pull")
    assert allows(access, "repository", "a/b", "delete")
    assert allows(access, "registry", "catalog", "*")
    assert allows(access, "registry", "catalog", "pull")
    assert not allows(access, "repository", "catalog", "pull")
    assert not allows(access, "repository", "none", "pull")
    assert not allows((), "repository", "foo", "pull")


# --- issuing and verifying -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["hs256", "rsa", "p256", "p384"])
def test_issue_verify_round_trip(kind: str, rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    if kind == "hs256":
        keys = TokenKeys.from_secret(b"s" * 40)
    else:
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
            rsa_key
            if kind == "rsa"
            else ec.generate_private_key(ec.SECP256R1() if kind == "p256" else ec.SECP384R1())
        )
        path = tmp_path / "key.pem"
        path.write_bytes(pem_of(private))
        keys = TokenKeys.from_pem_file(path)
    expected_alg = {"hs256": "HS256", "rsa": "RS256", "p256": "ES256", "p384": "ES384"}[kind]
    assert keys.algorithm == expected_alg
    issuer = TokenIssuer(keys, ISS, lifetime_seconds=120)
    access = [
        Access("repository", "a/b/c", ("pull", "push")),
        Access("registry", "catalog", ("*",)),
    ]

    issued = issuer.issue("alice", AUD, access, now=NOW + 0.9)

    assert issued.expires_in == 120
    assert issued.issued_at == "2023-11-14T22:13:20Z"
    assert len(issued.jti) == 32 and int(issued.jti, 16) >= 0
    assert jwt.get_unverified_header(issued.token)["alg"] == expected_alg
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert claims == {
        "iss": ISS,
        "sub": "alice",
        "aud": AUD,
        "exp": int(NOW) + 120,
        "nbf": int(NOW),
        "iat": int(NOW),
        "jti": issued.jti,
        "use": "access",
        "access": [
            {"type": "repository", "name": "a/b/c", "actions": ["pull", "push"]},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
        ],
    }
    verified = issuer.verify(issued.token, AUD, now=NOW + 60)
    assert verified.subject == "alice"
    assert verified.access == tuple(access)
    assert verified.expires_at == NOW + 120
    assert verified.jti == issued.jti
    assert allows(verified.access, "repository", "a/b/c", "push")


def test_jti_is_unique(hs_issuer: TokenIssuer) -> None:
    assert len({hs_issuer.issue("a", AUD, [], now=NOW).jti for _ in range(50)}) == 50


def test_verify_uses_the_real_clock_by_default(hs_issuer: TokenIssuer) -> None:
    issued = hs_issuer.issue("alice", AUD, PULL_FOO)
    assert hs_issuer.verify(issued.token, AUD).subject == "alice"


@pytest.mark.parametrize("lifetime", [59, 0, -1])
def test_lifetime_below_60_is_rejected(hs_keys: TokenKeys, lifetime: int) -> None:
    with pytest.raises(ValueError, match="60"):
        TokenIssuer(hs_keys, ISS, lifetime_seconds=lifetime)
    with pytest.raises(ValueError, match="60"):
        TokenIssuer(hs_keys, ISS, refresh_lifetime_seconds=lifetime)


def test_lifetime_of_60_is_accepted(hs_keys: TokenKeys) -> None:
    assert TokenIssuer(hs_keys, ISS, lifetime_seconds=60).issue("a", AUD, []).expires_in == 60


def test_empty_audience_cannot_be_issued(hs_issuer: TokenIssuer) -> None:
    with pytest.raises(ValueError, match="audience"):
        hs_issuer.issue("a", "", [])


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_rejected(hs_issuer: TokenIssuer, alg: str) -> None:
    token = f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(_claims())}."
    assert "algorithm" in _rejected(hs_issuer, token)


def test_hs256_token_is_rejected_by_an_rs256_issuer(
    rsa_issuer: TokenIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    # The classic confusion: the public key, which anyone may have, used as an HMAC secret.
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{b64json({'alg': 'HS256', 'typ': 'JWT'})}.{b64json(_claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert "algorithm" in _rejected(rsa_issuer, f"{signing_input}.{b64(mac)}")
    plain = jwt.encode(_claims(), "x" * 32, algorithm="HS256")
    assert "algorithm" in _rejected(rsa_issuer, plain)


def test_rs256_token_is_rejected_by_an_hs256_issuer(
    hs_issuer: TokenIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(_claims(), rsa_key, algorithm="RS256")
    assert "algorithm" in _rejected(hs_issuer, token)


def test_other_algorithms_of_the_same_family_are_rejected(
    rsa_issuer: TokenIssuer, rsa_key: rsa.RSAPrivateKey
) -> None:
    for alg in ("RS512", "PS256"):
        assert "algorithm" in _rejected(rsa_issuer, jwt.encode(_claims(), rsa_key, algorithm=alg))


def test_token_signed_by_another_key_is_rejected(
    rsa_issuer: TokenIssuer, other_rsa_key: rsa.RSAPrivateKey, hs_issuer: TokenIssuer
) -> None:
    forged = jwt.encode(_claims(), other_rsa_key, algorithm="RS256")
    assert "signature" in _rejected(rsa_issuer, forged)
    other_secret = TokenIssuer(TokenKeys.from_secret(b"o" * 32), ISS)
    assert "signature" in _rejected(hs_issuer, other_secret.issue("alice", AUD, PULL_FOO).token)


def test_the_raw_secret_is_not_the_hmac_key(hs_issuer: TokenIssuer) -> None:
    # Keys are derived from the secret for this purpose only (see keys.py).
    raw = jwt.encode(_claims(), b"k" * 32, algorithm="HS256")
    assert "signature" in _rejected(hs_issuer, raw)


def test_tampered_payload_with_original_signature_is_rejected(
    hs_issuer: TokenIssuer, rsa_issuer: TokenIssuer
) -> None:
    for issuer in (hs_issuer, rsa_issuer):
        token = issuer.issue("alice", AUD, PULL_FOO, now=NOW).token
        header, _, signature = token.split(".")
        escalated = jwt.decode(token, options={"verify_signature": False})
        escalated["access"][0]["actions"] = ["*"]
        assert "signature" in _rejected(issuer, f"{header}.{b64json(escalated)}.{signature}")
        renamed = {**escalated, "access": PULL_FOO[0].to_claim(), "sub": "admin"}
        assert "signature" in _rejected(issuer, f"{header}.{b64json(renamed)}.{signature}")


def test_expiry_with_leeway(hs_issuer: TokenIssuer) -> None:
    token = hs_issuer.issue("alice", AUD, PULL_FOO, now=NOW).token
    expires = NOW + 300
    assert hs_issuer.verify(token, AUD, now=expires + LEEWAY_SECONDS - 1).subject == "alice"
    assert _rejected(hs_issuer, token, now=expires + LEEWAY_SECONDS) == "token has expired"
    assert _rejected(hs_issuer, token, now=expires + 3600) == "token has expired"


def test_not_yet_valid_with_leeway(hs_issuer: TokenIssuer) -> None:
    token = hs_issuer.issue("alice", AUD, PULL_FOO, now=NOW).token
    assert hs_issuer.verify(token, AUD, now=NOW - LEEWAY_SECONDS).subject == "alice"
    assert _rejected(hs_issuer, token, now=NOW - LEEWAY_SECONDS - 1) == "token is not valid yet"


def test_nbf_or_iat_in_the_future_is_rejected(hs_issuer: TokenIssuer, hs_keys: TokenKeys) -> None:
    later = int(NOW) + 120
    assert _rejected(hs_issuer, sign_hs256(hs_keys, _claims(nbf=later))) == "token is not valid yet"
    assert _rejected(hs_issuer, sign_hs256(hs_keys, _claims(iat=later))) == "token is not valid yet"


def test_wrong_audience_is_rejected(hs_issuer: TokenIssuer) -> None:
    token = hs_issuer.issue("alice", AUD, PULL_FOO, now=NOW).token
    assert _rejected(hs_issuer, token, audience="other.example") == "token is for another service"


def test_wrong_issuer_is_rejected(hs_keys: TokenKeys, hs_issuer: TokenIssuer) -> None:
    token = TokenIssuer(hs_keys, "someone-else").issue("alice", AUD, PULL_FOO, now=NOW).token
    assert _rejected(hs_issuer, token) == "token is from another issuer"


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "use"])
def test_missing_required_claim_is_rejected(
    hs_issuer: TokenIssuer, hs_keys: TokenKeys, claim: str
) -> None:
    token = sign_hs256(hs_keys, _claims(**{claim: None}))
    assert _rejected(hs_issuer, token) == f"token lacks the {claim} claim"


def test_missing_access_claim_is_rejected(hs_issuer: TokenIssuer, hs_keys: TokenKeys) -> None:
    token = sign_hs256(hs_keys, _claims(access=None))
    assert _rejected(hs_issuer, token) == "token access claim is malformed"


@pytest.mark.parametrize(
    "overrides",
    [
        {"sub": 42},
        {"sub": ["alice"]},
        {"jti": 7},
        {"exp": "soon"},
        {"exp": True},
        {"nbf": [1]},
        {"iat": {"t": 1}},
        {"aud": 5},
        {"iss": ["simple-registry"]},
    ],
)
def test_claims_of_the_wrong_type_are_rejected(
    hs_issuer: TokenIssuer, hs_keys: TokenKeys, overrides: dict[str, Any]
) -> None:
    _rejected(hs_issuer, sign_hs256(hs_keys, _claims(**overrides)))


def test_infinite_expiry_is_rejected(hs_issuer: TokenIssuer, hs_keys: TokenKeys) -> None:
    # json.loads reads `Infinity`; only someone holding the key could sign it, but still.
    token = sign_hs256(hs_keys, _claims(exp=float("inf")))
    assert _rejected(hs_issuer, token) == "token claim exp is not a date"


@pytest.mark.parametrize(
    "access",
    [
        {"type": "repository", "name": "foo", "actions": ["pull"]},  # not a list
        "repository:foo:pull",
        [["repository", "foo", ["pull"]]],
        [{"type": "repository", "name": "foo"}],
        [{"type": "repository", "name": "foo", "actions": "pull"}],
        [{"type": "repository", "name": "foo", "actions": [1]}],
        [{"type": 1, "name": "foo", "actions": ["pull"]}],
        [{"type": "repository", "name": "", "actions": ["pull"]}],
        [{"name": "foo", "actions": ["pull"]}],
    ],
)
def test_malformed_access_claim_is_rejected(
    hs_issuer: TokenIssuer, hs_keys: TokenKeys, access: object
) -> None:
    token = sign_hs256(hs_keys, _claims(access=access))
    assert _rejected(hs_issuer, token) == "token access claim is malformed"


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "....", "é.é.é"])
def test_garbage_is_rejected(hs_issuer: TokenIssuer, token: str) -> None:
    _rejected(hs_issuer, token)


# --- refresh tokens --------------------------------------------------------------------------


def test_refresh_round_trip_and_lifetime(hs_keys: TokenKeys) -> None:
    issuer = TokenIssuer(hs_keys, ISS)
    assert issuer.refresh_lifetime_seconds == 7 * 24 * 3600
    refresh = issuer.issue_refresh("alice", AUD, now=NOW)
    assert issuer.verify_refresh(refresh, AUD, now=NOW + 6 * 24 * 3600) == "alice"
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify_refresh(refresh, AUD, now=NOW + 8 * 24 * 3600)
    with pytest.raises(InvalidToken, match="another service"):
        issuer.verify_refresh(refresh, "other", now=NOW)
    short = TokenIssuer(hs_keys, ISS, refresh_lifetime_seconds=3600)
    with pytest.raises(InvalidToken, match="expired"):
        short.verify_refresh(short.issue_refresh("a", AUD, now=NOW), AUD, now=NOW + 7200)


def test_access_and_refresh_tokens_do_not_stand_in_for_each_other(
    hs_issuer: TokenIssuer, hs_keys: TokenKeys
) -> None:
    access = hs_issuer.issue("alice", AUD, PULL_FOO, now=NOW).token
    refresh = hs_issuer.issue_refresh("alice", AUD, now=NOW)
    with pytest.raises(InvalidToken, match="not a refresh token"):
        hs_issuer.verify_refresh(access, AUD, now=NOW)
    assert _rejected(hs_issuer, refresh) == "not an access token"
    # Relabelling an access token as a refresh token needs the key, and keeping `access` fails.
    relabelled = sign_hs256(hs_keys, _claims(use="refresh"))
    with pytest.raises(InvalidToken, match="not a refresh token"):
        hs_issuer.verify_refresh(relabelled, AUD, now=NOW)
