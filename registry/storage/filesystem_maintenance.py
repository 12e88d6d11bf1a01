"""The filesystem driver's maintenance calls, for garbage collection: walking a tree a page at
a time, and removing objects with the folders they leave empty.

Everything here blocks, and the driver runs it in worker threads, a page or a batch of keys
per thread hop: a tree of any size is walked without holding the event loop, and without
listing a folder whole (the walk keeps its open directory iterators between pages).

Removing an empty folder races with a writer that has just made it for a new file: the
writer's rename then finds no folder. `os.rmdir` only ever removes an empty folder, so nothing
written is lost, and the writer makes the folder again (`FilesystemDriver._install`).
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from collections.abc import Generator, Iterable, Iterator, Sequence

from registry.storage.base import Listed

PAGE = 1000  # objects a page of `walk` holds
BATCH = 1000  # keys removed per worker-thread hop
_ABSENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def objects(path: str, key: str) -> Generator[Listed, None, None]:
    """Every regular file under the folder `path` (whose key is `key`), depth first. What is
    no regular file (a symlink, a socket) is left out, and so is what disappears while the
    walk runs. Nothing when `path` is no folder."""
    try:
        entries = os.scandir(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    with entries:
        for entry in entries:
            name = f"{key}/{entry.name}"
            try:
                if entry.is_dir(follow_symlinks=False):
                    yield from objects(entry.path, name)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since the folder was read
            yield Listed(name, st.st_size, st.st_mtime)


def page(found: Iterator[Listed]) -> list[Listed]:
    """The next page of a walk (in a worker thread): up to PAGE objects, [] at the end."""
    return list(itertools.islice(found, PAGE))


def unlink(root: str, keys: Sequence[str], *, sized: bool = False) -> tuple[int, set[str]]:
    """Unlink the regular files at `keys` (absent ones are fine). With `sized`, each is
    stat'ed first and the sizes add up to the first value returned (a key that is no regular
    file is left alone); without, 0. The second value: the folders of what was removed, for
    `prune` once every batch is done."""
    freed = 0
    folders: set[str] = set()
    for key in keys:
        path = f"{root}/{key}"
        try:
            if sized:
                st = os.stat(path, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    continue
                freed += st.st_size
            os.unlink(path)
        except _ABSENT:
            continue
        folders.add(key.rpartition("/")[0])
    return freed, folders


def deepest(pending: set[str]) -> list[str]:
    """Take the deepest folders out of `pending` (none is top-level): pruning goes one depth
    at a time, so a parent emptied by two of its children is tried after both."""
    depth = max(folder.count("/") for folder in pending)
    level = sorted(folder for folder in pending if folder.count("/") == depth)
    pending.difference_update(level)
    return level


def remove_empty(root: str, folders: Sequence[str]) -> list[str]:
    """rmdir each folder if it is empty; the parents of those removed (below the top-level
    folder), which may have become empty in turn."""
    parents = []
    for folder in folders:
        if _remove_empty(f"{root}/{folder}"):
            parent = folder.rpartition("/")[0]
            if "/" in parent:
                parents.append(parent)
    return parents


def prune(root: str, folders: Iterable[str]) -> None:
    """Remove each folder (keys relative to `root`) if it is empty, then its parent if that
    became empty, and so on up to, but never including, the top-level folder (`blobs`,
    `repositories`), one depth at a time (see `deepest`)."""
    pending = {folder for folder in folders if "/" in folder}
    while pending:
        pending.update(remove_empty(root, deepest(pending)))


def _remove_empty(path: str) -> bool:
    """rmdir: True when the folder went; False when it holds something (a writer may just
    have put a file there) or is gone already."""
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT, errno.ENOTDIR):
            return False
        raise
    return True
