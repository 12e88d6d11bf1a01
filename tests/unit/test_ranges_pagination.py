"""Range parsing and pagination rules."""

from __future__ import annotations

import pytest

from registry.api.ranges import parse_content_range, parse_range
from registry.model.listing import paginate
from registry.numbers import MAX_DIGITS, whole_number
from registry.oci.errors import RangeInvalid


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 0)),
        ("bytes=0-99", (0, 99)),
        ("bytes=10-", (10, 99)),
        ("bytes=-10", (90, 99)),
        ("bytes=-1000", (0, 99)),
        ("bytes=50-5000", (50, 99)),
    ],
)
def test_satisfiable_ranges(header: str, expected: tuple[int, int]) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-",
        "bytes=5-1",
        "bytes=-0",
        "items=0-1",
        "bytes=0-1,3-4",
        "bytes=a-b",
        "bytes",
        "bytes=--5",
        "bytes=\u00b2-",  # "²".isdigit() is true, int("²") fails
        "bytes=-\u00b2",
        "bytes=\u0663-",  # an Arabic-Indic 3: int() would take it
        "bytes=1_0-",  # and underscores
        "bytes=+1-",
        "bytes=" + "1" * 5000 + "-",  # beyond int()'s 4,300 digits
        "bytes=0-" + "9" * 5000,
        "bytes=-" + "9" * 5000,
    ],
)
def test_unsatisfiable_ranges_are_416_with_size(header: str) -> None:
    with pytest.raises(RangeInvalid) as info:
        parse_range(header, 100)
    assert info.value.status == 416
    assert info.value.headers["Content-Range"] == "bytes */100"


def test_content_range_forms() -> None:
    assert parse_content_range(None) is None
    assert parse_content_range("0-9") == (0, 9)
    assert parse_content_range("bytes 10-19/*") == (10, 19)
    with pytest.raises(RangeInvalid):
        parse_content_range("ten-twenty")


@pytest.mark.parametrize(
    "header", ["0-" + "9" * 5000, "9" * 5000 + "-1", "\u00b2-3", "0-\u0663", "bytes 0-1_0/*"]
)
def test_malformed_content_range_is_416(header: str) -> None:
    with pytest.raises(RangeInvalid) as info:
        parse_content_range(header)
    assert info.value.status == 416


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("007", 7), ("9" * MAX_DIGITS, int("9" * MAX_DIGITS))],
)
def test_whole_numbers(text: str, expected: int) -> None:
    assert whole_number(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1\n",
        "1_000",
        "1.5",
        "0x10",
        "\u00b2",
        "\u0663",
        "\uff11",  # a fullwidth 1
        "1" * (MAX_DIGITS + 1),
        "1" * 5000,
    ],
)
def test_not_whole_numbers(text: str) -> None:
    assert whole_number(text) is None


def test_paginate_sorts_and_continues_after_last() -> None:
    items = ["c", "a", "b", "d"]
    first = paginate(items, 2, None)
    assert (first.items, first.next_last) == (["a", "b"], "b")
    second = paginate(items, 2, first.next_last)
    assert (second.items, second.next_last) == (["c", "d"], None)
    assert paginate(items, None, "b").items == ["c", "d"]
    assert paginate(items, 0, None).items == []
    assert paginate(items, 10, "zz").items == []
