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

RATE = 200
_LINENO = re.compile(r":\d+\)$")


class Profiler:
    """`py-spy record --subprocesses --native` on a server tree until `stop()` (or 600 s)."""

    def __init__(self, py_spy: str, pid: int, output: Path) -> None:
        self.output = output
        args = [py_spy, "record", "--pid", str(pid), "--subprocesses", "--native"]
        args += ["--nonblocking", "--format", "raw", "--rate", str(RATE), "--duration", "600"]
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


@dataclass
class Summary:
    samples: int
    top_self: list[tuple[str, float]]
    top_total: list[tuple[str, float]]

    def render(self, title: str) -> str:
        out = [f"{title}: {self.samples} samples (threads that were not idle)"]
        out.append("  self%   function (where the sample was taken)")
        out += [f"  {pct:5.1f}   {name}" for name, pct in self.top_self]
        out.append("  total%  function (on the stack)")
        out += [f"  {pct:5.1f}   {name}" for name, pct in self.top_total]
        return "\n".join(out)


def _frame(raw: str) -> str:
    return _LINENO.sub(")", raw.strip())


def summarize(path: Path, top: int = 20) -> Summary:
    """Self and inclusive share per function (line numbers dropped) over all processes."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            total_counts[name] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(n, 100 * c / samples) for n, c in counter.most_common(top)] if samples else []

    return Summary(samples, share(self_counts), share(total_counts))


if __name__ == "__main__":
    for name in sys.argv[1:3] if len(sys.argv) > 1 else []:
        print(summarize(Path(name)).render(name))
