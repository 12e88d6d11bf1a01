"""Optional py-spy sampling of our server during a phase, and a summary of the samples.

py-spy pauses the process for each sample, so numbers from a profiled run are not results:
profile runs only say where the time goes. `python bench/profiling.py FILE.txt` summarizes a
saved raw (collapsed-stack) file again.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE = 100
IDLE = ("epoll_wait", "poll", "pthread_cond_timedwait", "pthread_cond_wait", "sem_timedwait")
ENTRY = ("(registry/server.py)", "(registry/cli.py)", "(registry/__main__.py)")
_LINENO = re.compile(r":\d+\)$")


class Profiler:
    """`py-spy record --subprocesses --native` on a server tree until `stop()` (or 600 s).

    Samples whose innermost frame is a wait (epoll, condition variable) are idle and dropped.
    """

    def __init__(self, py_spy: str, pid: int, output: Path) -> None:
        self.output = output
        args = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--native"]
        args += ["--format", "raw", "--rate", str(RATE), "--duration", "600"]
        args += ["--output", str(output)]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def stop(self) -> str:
        self._process.send_signal(signal.SIGINT)
        try:
            _, err = self._process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, err = self._process.communicate(timeout=30)
        return err or ""


class PerfProfiler:
    """`perf record` (Linux perf, no call graphs) on the given processes until `stop()`.

    It sees what py-spy cannot: kernel time (page-cache copies, TCP) and C libraries with real
    symbols (memcpy, libcrypto). Summarized by library+symbol and by thread.
    """

    def __init__(self, perf: str, pids: list[int], output: Path) -> None:
        self.output = output
        self.perf = perf
        args = [perf, "record", "-F", "499", "-p", ",".join(map(str, pids)), "-o", str(output)]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def stop(self) -> str:
        self._process.send_signal(signal.SIGINT)
        try:
            _, err = self._process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            _, err = self._process.communicate(timeout=30)
        return err or ""

    def render(self, title: str, top: int = 20) -> str:
        out = [f"{title} (perf, all threads of the server)"]
        for sort, limit in (("dso", 8), ("dso,sym", top), ("pid", 6)):
            done = subprocess.run(
                [
                    self.perf,
                    "report",
                    "-i",
                    str(self.output),
                    "--stdio",
                    "--no-children",
                    "--sort",
                    sort,
                    "-g",
                    "none",
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
            rows = [ln.rstrip() for ln in done.stdout.splitlines() if re.match(r"^\s+\d", ln)]
            label = {"dso": "library", "dso,sym": "symbol", "pid": "thread"}[sort]
            out.append(f"  by {label}:")
            out += ["  " + " ".join(r.split()) for r in rows[:limit]]
        return "\n".join(out)


@dataclass
class Summary:
    samples: int
    top_self: list[tuple[str, float]]
    by_group: list[tuple[str, float]]
    ours_total: list[tuple[str, float]]

    def render(self, title: str) -> str:
        out = [f"{title}: {self.samples} busy samples at {RATE} Hz (waits left out)"]
        out.append("  self%  where the sample was taken, by package or library")
        out += [f"  {pct:5.1f}  {name}" for name, pct in self.by_group]
        out.append("  self%  where the sample was taken, by function")
        out += [f"  {pct:5.1f}  {name}" for name, pct in self.top_self]
        out.append("  total% our functions (registry/...) on the stack")
        out += [f"  {pct:5.1f}  {name}" for name, pct in self.ours_total]
        return "\n".join(out)


def _frame(raw: str) -> str:
    return _LINENO.sub(")", raw.strip())


def _group(frame: str) -> str:
    """`f (pkg/mod.py)` -> `pkg`; `f (libcrypto.so.3)` -> `libcrypto.so.3`; C files -> `C`."""
    where = frame.rpartition("(")[2].rstrip(")")
    if where.endswith((".c", ".h")):
        return "CPython C code"
    if "/" in where:
        return where.split("/", 1)[0]
    return where or "?"


def _idle(frames: list[str]) -> bool:
    leaf = frames[-1].split(" ", 1)[0]
    if leaf.startswith(IDLE) or leaf.startswith("__GI___poll"):
        return True
    # A thread blocked on a Python lock (an idle pool thread in `queue.get`) or waiting for
    # the GIL uses no CPU; libc's wait functions are often only an address without symbols.
    waiting = (
        "EpollSelector.select",
        "select_epoll_poll",
        "Condition.wait",
        "Event.wait",
        "PyThread_acquire_lock_timed",
        "take_gil",
    )
    return "(libc.so.6)" in frames[-1] and any(f.startswith(waiting + IDLE) for f in frames[-4:])


def summarize(path: Path, top: int = 15) -> Summary:
    """Shares of busy samples, line numbers dropped, over all processes of the tree."""
    self_counts: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames or _idle(frames):
            continue
        samples += count
        self_counts[frames[-1]] += count
        groups[_group(frames[-1])] += count
        for name in {f for f in frames if "(registry/" in f and not f.endswith(ENTRY)}:
            ours[name] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(n, 100 * c / samples) for n, c in counter.most_common(top)] if samples else []

    return Summary(samples, share(self_counts), share(groups), share(ours))


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(summarize(Path(name)).render(name))
