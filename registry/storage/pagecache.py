"""Whether a range of a file is in the page cache, asked without reading it.

Blob reads use the answer to pick where to read: a range the kernel already holds is a
memory copy of about a millisecond per 4 MiB, cheaper on the event loop than handing it to a
worker thread (on a small machine that thread competes with the loop and the client for the
cores, and its copy lands in another core's cache: pulls measured 8-15% faster). A range that
would wait for the disk must never block the loop, so anything short of "every page is
there" goes to a thread.

Two ways of asking, both through ctypes (the standard library exposes neither):
cachestat(2), one system call of under a microsecond, on Linux 6.5 and later; otherwise
mincore(2) on a fresh read-only mapping of the range (about 25 us per 4 MiB), which never
touches the pages (no faults, no I/O, no SIGBUS if the file shrinks meanwhile). Where neither
is possible (not Linux, a 32-bit build, no libc) `holds` always answers False and every read
goes to a thread, which is always correct.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import mmap
import sys
from collections.abc import Callable

PAGE = mmap.PAGESIZE
_MAP_FAILED = 2**64 - 1
_RESIDENT_BIT = bytes(i & 1 for i in range(256))  # mincore: bit 0 set = page resident
_SYS_CACHESTAT = 451  # the same number on every Linux architecture
_NO_CACHESTAT = (errno.ENOSYS, errno.EPERM)  # an old kernel, or a seccomp filter


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in ("cache", "dirty", "writeback", "evicted", "recently_evicted")
    ]


class _Calls:
    """The libc functions, with their C signatures declared."""

    def __init__(self, libc: ctypes.CDLL) -> None:
        self.syscall: Callable[..., int] = libc.syscall
        self.mmap: Callable[..., int | None] = libc.mmap
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int64,  # off_t: 64 bits on the 64-bit builds this is enabled for
        ]
        self.mincore: Callable[..., int] = libc.mincore
        libc.mincore.restype = ctypes.c_int
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
        self.munmap: Callable[..., int] = libc.munmap
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.cachestat_works = True  # until the kernel says otherwise

    def cachestat(self, fd: int, offset: int, length: int) -> bool | None:
        """None when this kernel (or its seccomp filter) has no cachestat."""
        request, result = _Range(offset, length), _Stat()
        if self.syscall(_SYS_CACHESTAT, fd, ctypes.byref(request), ctypes.byref(result), 0):
            if ctypes.get_errno() in _NO_CACHESTAT:
                self.cachestat_works = False
                return None
            return False
        first, last = offset // PAGE, (offset + length - 1) // PAGE
        return bool(result.cache >= last - first + 1)

    def mincore_of(self, fd: int, offset: int, length: int) -> bool:
        start = offset - offset % PAGE
        span = offset + length - start
        address = self.mmap(None, span, mmap.PROT_READ, mmap.MAP_SHARED, fd, start)
        if address is None or address == _MAP_FAILED:
            return False
        try:
            pages = ctypes.create_string_buffer((span + PAGE - 1) // PAGE)
            if self.mincore(address, span, pages) != 0:
                return False
            return b"\x00" not in pages.raw.translate(_RESIDENT_BIT)
        finally:
            self.munmap(address, span)


def _load() -> _Calls | None:
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    try:
        return _Calls(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True))
    except (OSError, AttributeError):
        return None


_calls = _load()


def available() -> bool:
    """False where `holds` cannot ask the kernel and always answers False."""
    return _calls is not None


def holds(fd: int, offset: int, length: int) -> bool:
    """True if every page of `length` bytes from `offset` of the open file `fd` is cached.

    The answer may be stale a moment later (memory pressure can evict a page in between);
    the cost of that is one read that waits for the disk, not a wrong result.
    """
    if _calls is None or length <= 0 or offset < 0:
        return False
    if _calls.cachestat_works:
        answer = _calls.cachestat(fd, offset, length)
        if answer is not None:
            return answer
    return _calls.mincore_of(fd, offset, length)
