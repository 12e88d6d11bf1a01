"""Upstream challenges, token answers and the token cache (`registry.proxy.tokens`), and how a
`Retry-After` is read (`registry.proxy.upstream.retry_seconds`)."""

from __future__ import annotations

import email.utils
import time

import pytest

from registry.proxy.tokens import EXPIRY_MARGIN, Challenge, Token, TokenCache, token_from
from registry.proxy.upstream import DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER, retry_seconds


def test_a_bearer_challenge_with_quoted_and_bare_parameters() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/nginx:pull,push", error=invalid_token'
    )
    challenge = Challenge.parse(header)
    assert challenge == Challenge(
        "bearer",
        {
            "realm": "https://auth.docker.io/token",
            "service": "registry.docker.io",
            "scope": "repository:library/nginx:pull,push",
            "error": "invalid_token",
        },
    )


def test_a_basic_challenge_and_escapes() -> None:
    assert Challenge.parse('Basic realm="a \\"quoted\\" realm"') == Challenge(
        "basic", {"realm": 'a "quoted" realm'}
    )
    assert Challenge.parse("") is None
    assert Challenge.parse("   ") is None


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ({"token": "t1", "expires_in": 300}, "t1"),
        ({"access_token": "t2"}, "t2"),
        ({"token": "", "access_token": "t3"}, "t3"),
    ],
)
def test_token_or_access_token(answer: dict[str, object], value: str) -> None:
    token = token_from(answer, now=1000.0)
    assert token is not None
    assert token.value == value


@pytest.mark.parametrize("answer", [{}, {"token": 5}, [], "token", {"access_token": None}])
def test_an_answer_without_a_token(answer: object) -> None:
    assert token_from(answer, now=0.0) is None


def test_a_token_is_used_until_shortly_before_it_expires() -> None:
    token = token_from({"token": "t", "expires_in": 300}, now=1000.0)
    assert token is not None
    assert token.expires == 1000.0 + 300 - EXPIRY_MARGIN
    # no lifetime given: the spec's 60 s; a tiny one keeps half of itself
    default = token_from({"token": "t"}, now=0.0)
    assert default is not None and default.expires == 60 - EXPIRY_MARGIN
    tiny = token_from({"token": "t", "expires_in": 4}, now=0.0)
    assert tiny is not None and tiny.expires == 2.0
    # a lifetime that is no whole number counts as not given
    odd = token_from({"token": "t", "expires_in": "soon"}, now=0.0)
    assert odd is not None and odd.expires == 60 - EXPIRY_MARGIN


def test_the_cache_keeps_tokens_per_scope_until_they_expire() -> None:
    cache = TokenCache()
    now = time.monotonic()
    cache.put("repository:a:pull", Token("A", now + 100))
    cache.put("repository:b:pull", Token("B", now - 1))  # expired already
    assert cache.get("repository:a:pull") == "A"
    assert cache.get("repository:b:pull") is None
    assert cache.get("repository:c:pull") is None
    cache.forget("repository:a:pull")
    assert cache.get("repository:a:pull") is None


def test_retry_after_in_seconds_or_as_a_date_within_bounds() -> None:
    assert retry_seconds("30") == 30.0
    assert retry_seconds(" 7 ") == 7.0
    assert retry_seconds(None) == DEFAULT_RETRY_AFTER
    assert retry_seconds("soon") == DEFAULT_RETRY_AFTER
    assert retry_seconds("99999999") == MAX_RETRY_AFTER
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    assert 100 < retry_seconds(later) <= 120
    past = email.utils.formatdate(time.time() - 120, usegmt=True)
    assert retry_seconds(past) == 0.0
