"""The machine description, the side-by-side table with ratios, and the target verdicts."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class MetricLike(Protocol):
    value: float
    unit: str
    samples: list[float]
    server_cpu_cores: float
    server_sys_share: float
    client_cpu_cores: float
    other_cpu_cores: float
    peak_rss_max_mib: float
    peak_rss_sum_mib: float
    extra: dict[str, Any]


AllResults = Mapping[str, Mapping[str, MetricLike]]


@dataclass(frozen=True)
class Target:
    metric: str
    label: str
    kind: str  # "ratio>=" (ours/Distribution at least) or "max" (ours at most, absolute)
    bound: float


TARGETS = [
    Target("push_monolithic", "push blob, monolithic", "ratio>=", 2.0),
    Target("push_chunked", "push blob, chunked", "ratio>=", 2.0),
    Target("pull", "pull blob", "ratio>=", 1.0),
    Target("manifest_head", "manifest HEAD by tag", "ratio>=", 1.5),
    Target("manifest_get", "manifest GET by tag", "ratio>=", 1.5),
    Target("big_push_monolithic", "big push: peak worker RSS (mono)", "max", 150.0),
    Target("big_push_chunked", "big push: peak worker RSS (chunked)", "max", 150.0),
    Target("s3_push_monolithic", "S3: push blob, monolithic", "ratio>=", 2.0),
    Target("s3_push_chunked", "S3: push blob, chunked", "ratio>=", 2.0),
    Target("s3_pull", "S3: pull blob", "ratio>=", 1.0),
    Target("s3_manifest_head", "S3: manifest HEAD by tag", "ratio>=", 5.0),
]


def machine_info(args: Any) -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    python = subprocess.run(
        [args.python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    return {
        "server_code": _git_state(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "server_python": python,
        "client_python": platform.python_version(),
        "distribution": args.distribution if os.path.exists(args.distribution) else None,
        "loadgen": args.loadgen,
        "wrk": shutil.which("wrk"),
        "loadavg_at_start": os.getloadavg()[0],
    }


def _git_state() -> str:
    """The commit measured, plus a hash of uncommitted changes to registry/ (read-only git)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", repo, *args], capture_output=True, text=True, timeout=30
        )
        return done.stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
        diff = git("diff", "HEAD", "--", "registry")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not diff:
        return head
    return f"{head} + uncommitted registry/ changes (diff sha256 {_short_hash(diff)})"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def render_machine(m: dict[str, Any]) -> str:
    text = (
        f"machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, kernel {m['kernel']}, "
        f"server Python {m['server_python']}, load generator {m['loadgen']}\n"
        f"server code: {m['server_code']}"
    )
    return text


def progress(kind: str, results: Mapping[str, MetricLike], names: tuple[str, ...]) -> None:
    shown = ", ".join(f"{n} {results[n].value:g} {results[n].unit}" for n in names if n in results)
    print(f"  {kind:13s} {shown}", flush=True)


def paired_ratio(results: AllResults, metric: str) -> float | None:
    """Median of per-rep ratios: reps ran in turns, so rep i of both saw the same moment."""
    ours = results.get("ours", {}).get(metric)
    theirs = results.get("distribution", {}).get(metric)
    if ours is None or theirs is None or len(ours.samples) < 2:
        return None
    if len(ours.samples) != len(theirs.samples) or not all(theirs.samples):
        return None
    ratios = sorted(a / b for a, b in zip(ours.samples, theirs.samples, strict=True))
    return (
        ratios[len(ratios) // 2] if len(ratios) % 2 else sum(ratios[len(ratios) // 2 - 1 :][:2]) / 2
    )


def _ratio(results: AllResults, metric: str) -> float | None:
    ours = results.get("ours", {}).get(metric)
    theirs = results.get("distribution", {}).get(metric)
    if ours is None or theirs is None or not theirs.value:
        return None
    return ours.value / theirs.value


def verdicts(results: AllResults) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in TARGETS:
        ours = results.get("ours", {}).get(t.metric)
        if ours is None:
            continue
        if t.kind == "max":
            out[t.metric] = {"target": f"<= {t.bound:g}", "met": ours.value <= t.bound}
            continue
        ratio = _ratio(results, t.metric)
        paired = paired_ratio(results, t.metric)
        out[t.metric] = {
            "target": f"ours/Distribution >= {t.bound:g}",
            "ratio": None if ratio is None else round(ratio, 2),
            "paired_ratio": None if paired is None else round(paired, 2),
            "met": None if ratio is None else ratio >= t.bound,
        }
    return out


def _cell(results: AllResults, kind: str, metric: str) -> str:
    m = results.get(kind, {}).get(metric)
    return "-" if m is None else f"{m.value:,.1f}"


def render_table(results: AllResults) -> str:
    rows = [("metric", "unit", "ours", "Distribution", "ours/Dist", "target", "met")]
    checks = verdicts(results)
    for t in TARGETS:
        if t.metric not in results.get("ours", {}):
            continue
        unit = results["ours"][t.metric].unit
        ratio = _ratio(results, t.metric)
        target = f">= {t.bound:g}x" if t.kind == "ratio>=" else f"<= {t.bound:g} MiB"
        met = checks[t.metric]["met"]
        rows.append(
            (
                t.label,
                unit,
                _cell(results, "ours", t.metric),
                _cell(results, "distribution", t.metric),
                _ratio_cell(ratio, paired_ratio(results, t.metric)),
                target,
                "-" if met is None else ("yes" if met else "NO"),
            )
        )
    for metrics, attr, label in (
        (
            ("push_monolithic", "push_chunked", "pull"),
            "peak_rss_max_mib",
            "peak RSS, bulk tests (largest process)",
        ),
        (
            ("manifest_head", "manifest_get"),
            "peak_rss_sum_mib",
            "peak RSS, manifest tests (all processes)",
        ),
    ):
        values = {
            k: max((getattr(r[m], attr) for m in metrics if m in r), default=None)
            for k, r in results.items()
        }
        if values.get("ours") is None:
            continue
        theirs = values.get("distribution")
        ratio_text = f"{values['ours'] / theirs:.2f}" if theirs else "-"
        rows.append(
            (
                label,
                "MiB",
                f"{values['ours']:.1f}",
                f"{theirs:.1f}" if theirs else "-",
                ratio_text,
                "",
                "",
            )
        )
    return grid(rows)


def _ratio_cell(ratio: float | None, paired: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}" + ("" if paired is None else f" (paired {paired:.2f})")


def render_usage(results: AllResults) -> str:
    """Cores used by server, client and other processes while measuring; RSS largest/sum.

    In the scaled mode, the S3 server (moto) and Redis are a column of their own."""
    backends = any("moto_cores" in m.extra for r in results.values() for m in r.values())
    head = ["metric", "registry", "median (range)", "server cores", "client cores"]
    head += ["moto/redis cores"] if backends else []
    rows = [(*head, "other cores", "peak RSS")]
    for kind, metrics in results.items():
        for name, m in metrics.items():
            extra = f" ({m.extra['MB/s']} MB/s)" if "MB/s" in m.extra else ""
            if len(m.samples) > 1:
                extra = f" (range {min(m.samples):g}-{max(m.samples):g})"
            if "tool" in m.extra:
                extra = f" ({m.extra['tool']}, p50 {m.extra['p50_ms']:.1f} ms)"
            cells = [
                name,
                kind,
                f"{m.value:g} {m.unit}{extra}",
                f"{m.server_cpu_cores:.2f} (sys {100 * m.server_sys_share:.0f}%)",
                f"{m.client_cpu_cores:.2f}",
            ]
            if backends:
                moto, redis = m.extra.get("moto_cores"), m.extra.get("redis_cores")
                cells.append("" if moto is None else f"{moto:.2f} / {redis:.2f}")
            cells += [
                f"{m.other_cpu_cores:.2f}",
                f"{m.peak_rss_max_mib:.0f}/{m.peak_rss_sum_mib:.0f} MiB",
            ]
            rows.append(tuple(cells))
    return grid(rows)


def grid(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)
