"""The back-off both coordinators wait with: its delays, and `retry` until a deadline.

Attempts are plain coroutines that count their calls; no test depends on how long a wait took.
"""

from __future__ import annotations

import itertools

import pytest

from registry.coord import backoff

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_delays_double_up_to_the_cap() -> None:
    assert list(itertools.islice(backoff.delays(), 8)) == [
        0.001,
        0.002,
        0.004,
        0.008,
        0.016,
        0.032,
        0.05,
        0.05,
    ]
    assert list(itertools.islice(backoff.delays(0.05, 1.0), 6)) == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]


async def test_retry_stops_at_the_first_success() -> None:
    calls = 0

    async def third_time_lucky() -> bool:
        nonlocal calls
        calls += 1
        return calls == 3

    assert await backoff.retry(third_time_lucky, 60) is True
    assert calls == 3


class Never:
    """An attempt that never succeeds, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        return False


async def test_retry_tries_once_even_with_no_time_left() -> None:
    never = Never()
    assert await backoff.retry(never, 0) is False
    assert never.calls == 1
    assert await backoff.retry(never, -1) is False
    assert never.calls == 2


async def test_retry_gives_up_once_the_deadline_passed() -> None:
    never = Never()
    # 1 + 2 + 4 + 8 ms of waits fit in 20 ms; the deadline is hit within a few more tries.
    assert await backoff.retry(never, 0.02) is False
    assert 2 <= never.calls < 20
