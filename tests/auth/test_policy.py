"""The RBAC policy of a process: who exists, and its remembered decisions."""

from __future__ import annotations

import pytest

from registry.auth import policy as policy_module
from registry.auth.policy import Policy
from registry.auth.scopes import Need, Principal
from registry.config.builtin import with_flag_users
from registry.config.model import Manifests


def _policy() -> Policy:
    """Anonymous may do everything; nobody else exists."""
    return Policy(with_flag_users(Manifests(), "admin", None, anonymous=True))


def test_decisions_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every repository a client names adds a decision: the memory of them is bounded, and
    what it forgot is decided again, the same way."""
    monkeypatch.setattr(policy_module, "DECISIONS", 3)
    policy = _policy()
    anonymous = Principal("anonymous", anonymous=True)
    needs = [Need.read("manifests", f"repo/{i}") for i in range(10)]
    assert all(policy.may(anonymous, need) for need in needs)
    assert len(policy._decisions) == 3
    assert all(policy.may(anonymous, need) for need in needs)


def test_a_user_the_manifests_do_not_define_may_do_nothing() -> None:
    policy = _policy()
    ghost = Principal("ghost")
    assert not policy.exists(ghost)
    assert not policy.may(ghost, Need.read("manifests", "repo/a"))
