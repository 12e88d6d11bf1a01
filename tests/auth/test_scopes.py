"""What each request needs, and the token scope a client is challenged to ask for it."""

from __future__ import annotations

import pytest

from registry.auth.scopes import Need
from registry.auth.tokens import allows, parse_scope


@pytest.mark.parametrize(
    ("need", "scope"),
    [
        (Need.read("manifests", "a/b"), "repository:a/b:pull"),
        (Need.read("blobs", "a/b", verb="HEAD"), "repository:a/b:pull"),
        (Need("blobs", "a/b", "POST"), "repository:a/b:pull,push"),
        (Need("blobs", "a/b", "PATCH"), "repository:a/b:pull,push"),
        (Need("blobs", "a/b", "PUT"), "repository:a/b:pull,push"),
        (Need("manifests", "a/b", "PUT", "v1"), "repository:a/b:pull,push"),
        (Need("manifests", "a/b", "DELETE"), "repository:a/b:delete"),
        (Need("blobs", "a/b", "DELETE"), "repository:a/b:delete"),
        (Need.catalog(), "registry:catalog:*"),
    ],
)
def test_challenge_scope_of_each_need(need: Need, scope: str) -> None:
    """Writes ask for pull and push, so the one token a client takes for a push also reads."""
    assert need.token_scope == scope
    granted = tuple(parse_scope(scope))
    assert allows(granted, need.token_type, need.token_name, need.action)
    if need.action == "push":
        assert allows(granted, need.token_type, need.token_name, "pull")
