"""Digest grammar and the algorithms we verify.

A digest reaches a storage key, so it is validated against the registered-algorithm grammar
here before anything else sees it: only `sha256` and `sha512` with lowercase hex of the exact
length are accepted, which rules out path separators and traversal by construction.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from registry.oci.errors import DigestInvalid

HEX_LENGTHS = {"sha256": 64, "sha512": 128}
# Matched whole (`fullmatch`): with `$`, "sha256:<hex>\n" would pass, as `$` matches before a
# final newline.
_GRAMMAR = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
_LOWER_HEX = re.compile(r"[0-9a-f]+")


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and validate; unknown algorithms and malformed values are DIGEST_INVALID."""
        match = _GRAMMAR.fullmatch(text)
        if match is None:
            raise DigestInvalid(f"invalid digest {text[:200]!r}", detail={"digest": text[:200]})
        algorithm, encoded = match.groups()
        length = HEX_LENGTHS.get(algorithm)
        if length is None:
            raise DigestInvalid(
                f"unsupported digest algorithm {algorithm!r}", detail={"digest": text[:200]}
            )
        if len(encoded) != length or not _LOWER_HEX.fullmatch(encoded):
            raise DigestInvalid(
                f"invalid {algorithm} digest {text[:200]!r}", detail={"digest": text[:200]}
            )
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def is_digest(text: str) -> bool:
    """True when a reference looks like a digest (it contains ':'); tags never do."""
    return ":" in text
