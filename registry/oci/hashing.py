"""Resumable SHA-256/SHA-512 whose state can be saved between requests.

`hashlib` cannot export its running state, yet a chunked upload's next PATCH may reach another
worker process. libcrypto's low-level `SHA256_*`/`SHA512_*` functions hash at the same speed and
keep their state in a plain C struct, which we copy out and back as bytes.

The saved form is an explicit layout, never pickle: a 4-byte magic, the algorithm name
length-prefixed, then the C struct. Loading checks the length and the struct's block-position
and digest-length fields, so corrupt state is rejected instead of reaching OpenSSL.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from dataclasses import dataclass
from typing import Any

_MAGIC = b"SRH1"


@dataclass(frozen=True, slots=True)
class _Algorithm:
    name: str
    ctx_size: int
    digest_size: int
    block_size: int
    # byte offset of `unsigned int num, md_len` at the end of the struct
    tail_offset: int
    init: Any
    update: Any
    final: Any


def _load() -> dict[str, _Algorithm]:
    path = ctypes.util.find_library("crypto")
    if path is None:
        return {}
    try:
        lib = ctypes.CDLL(path)
        funcs = {
            name: getattr(lib, name)
            for name in (
                "SHA256_Init",
                "SHA256_Update",
                "SHA256_Final",
                "SHA512_Init",
                "SHA512_Update",
                "SHA512_Final",
            )
        }
    except (OSError, AttributeError):
        return {}
    for name, func in funcs.items():
        func.restype = ctypes.c_int
        if name.endswith("Update"):
            func.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        elif name.endswith("Final"):
            func.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        else:
            func.argtypes = [ctypes.c_void_p]
    return {
        "sha256": _Algorithm(
            "sha256",
            112,
            32,
            64,
            104,
            funcs["SHA256_Init"],
            funcs["SHA256_Update"],
            funcs["SHA256_Final"],
        ),
        "sha512": _Algorithm(
            "sha512",
            216,
            64,
            128,
            208,
            funcs["SHA512_Init"],
            funcs["SHA512_Update"],
            funcs["SHA512_Final"],
        ),
    }


_ALGORITHMS = _load()


def resumable_available(algorithm: str = "sha256") -> bool:
    return algorithm in _ALGORITHMS


class ResumableHash:
    """An incremental hash with `save()`/`restore()` of its exact state."""

    __slots__ = ("_alg", "_ctx", "_done")

    def __init__(self, algorithm: str = "sha256", state: bytes | None = None) -> None:
        alg = _ALGORITHMS.get(algorithm)
        if alg is None:
            raise ValueError(f"no resumable implementation of {algorithm}")
        self._alg = alg
        self._ctx = ctypes.create_string_buffer(alg.ctx_size)
        self._done = False
        if state is None:
            if alg.init(self._ctx) != 1:
                raise RuntimeError("hash initialisation failed")
        else:
            ctypes.memmove(self._ctx, _parse_state(alg, state), alg.ctx_size)

    @property
    def algorithm(self) -> str:
        return self._alg.name

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise RuntimeError("hash already finalised")
        if not data:
            return
        view = memoryview(data)
        if view.readonly:
            buffer: Any = bytes(view) if not isinstance(data, bytes) else data
            self._alg.update(self._ctx, buffer, len(buffer))
        else:
            array = (ctypes.c_char * len(view)).from_buffer(view)
            self._alg.update(self._ctx, ctypes.cast(array, ctypes.c_char_p), len(view))

    def save(self) -> bytes:
        name = self._alg.name.encode()
        return _MAGIC + bytes([len(name)]) + name + self._ctx.raw

    def hexdigest(self) -> str:
        out = ctypes.create_string_buffer(self._alg.digest_size)
        work = ctypes.create_string_buffer(self._ctx.raw, self._alg.ctx_size)
        if self._alg.final(out, work) != 1:
            raise RuntimeError("hash finalisation failed")
        return out.raw.hex()


def _parse_state(alg: _Algorithm, state: bytes) -> bytes:
    name = alg.name.encode()
    header = _MAGIC + bytes([len(name)]) + name
    if not state.startswith(header) or len(state) != len(header) + alg.ctx_size:
        raise ValueError("hash state has the wrong layout")
    ctx = state[len(header) :]
    num, md_len = struct.unpack_from("=II", ctx, alg.tail_offset)
    if num >= alg.block_size or md_len != alg.digest_size:
        raise ValueError("hash state is corrupt")
    return ctx
