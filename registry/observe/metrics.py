"""Every metric the registry exports, defined once, and how to render them.

Names start with `registry_` and reuse CNCF Distribution's where they mean the same thing, so
dashboards written for it keep working. Labels are bounded: route names (never raw paths or
repository names), HTTP methods from a fixed set, status codes, driver and action names.

With several worker processes, prometheus_client's multiprocess mode keeps each process's
values in memory-mapped files under PROMETHEUS_MULTIPROC_DIR (set by `exporter.py` before this
module is first imported) and sums them when rendering. Gauges therefore declare how their
per-process values combine (`multiprocess_mode`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

import registry

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Requests range from a ping (milliseconds) to the last PUT of a multi-gigabyte layer (minutes).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
ACTION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# HTTP methods outside this set are counted as "other" (a client may send any token).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# --- HTTP (Distribution's names and labels)

HTTP_REQUESTS = Counter(
    "registry_http_requests_total",
    "HTTP requests answered, by route name, method and status code.",
    ["handler", "method", "code"],
)
HTTP_DURATION = Histogram(
    "registry_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response body.",
    ["handler", "method"],
    buckets=HTTP_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "registry_http_in_flight_requests",
    "Requests being served now, by route name.",
    ["handler"],
    multiprocess_mode="livesum",
)
HTTP_RECEIVED = Counter(
    "registry_http_received_bytes_total",
    "Request body bytes received, by route name.",
    ["handler"],
)
HTTP_SENT = Counter(
    "registry_http_sent_bytes_total",
    "Response body bytes sent, by route name.",
    ["handler"],
)

# --- what the requests did

UPLOAD_SESSIONS = Counter(
    "registry_upload_sessions_total",
    "Blob upload events: started, completed, failed (a chunk or the final PUT was refused or "
    "broke), cancelled.",
    ["event"],
)
PUSHES = Counter(
    "registry_pushes_total",
    "Blobs (completed uploads and cross-repository mounts) and manifests stored.",
    ["kind"],
)
PULLS = Counter(
    "registry_pulls_total",
    "Blobs and manifests served with GET (HEAD requests are not pulls).",
    ["kind"],
)

# --- auth

AUTH_ATTEMPTS = Counter(
    "registry_auth_attempts_total",
    "Credentials checked, by method (basic, bearer, password, refresh_token, anonymous, other) "
    "and result (success, failure).",
    ["method", "result"],
)
TOKENS_ISSUED = Counter(
    "registry_tokens_issued_total",
    "Tokens issued by /token, by kind (access, refresh).",
    ["kind"],
)

# --- pull-through cache (`cache`: the PullThroughCache's name, from the configuration)

PROXY_UPSTREAM_REQUESTS = Counter(
    "registry_proxy_upstream_requests_total",
    "Requests to upstream registries, by cache, kind (manifest, blob, tags, token) and outcome "
    "(2xx, 3xx, 4xx, 5xx, timeout, error: the connection failed).",
    ["cache", "kind", "outcome"],
)
PROXY_UPSTREAM_DURATION = Histogram(
    "registry_proxy_upstream_request_duration_seconds",
    "Time until an upstream answered with its headers (a body streams afterwards).",
    ["cache", "kind"],
    buckets=ACTION_BUCKETS,
)
PROXY_HITS = Counter(
    "registry_proxy_hits_total",
    "Pulls under a cache answered from what it holds, by kind (blob, manifest).",
    ["cache", "kind"],
)
PROXY_MISSES = Counter(
    "registry_proxy_misses_total",
    "Pulls under a cache that fetched from the upstream, by kind (blob, manifest).",
    ["cache", "kind"],
)
PROXY_FETCHED_BYTES = Counter(
    "registry_proxy_fetched_bytes_total",
    "Bytes of blobs and manifests received from the upstream.",
    ["cache"],
)
PROXY_STALE = Counter(
    "registry_proxy_stale_serves_total",
    "Tags served past their ttl because the upstream failed (within maxStale).",
    ["cache"],
)
PROXY_TOKENS = Counter(
    "registry_proxy_token_fetches_total",
    "Tokens fetched from upstream token services (cached per scope until they expire).",
    ["cache"],
)
PROXY_COALESCED = Counter(
    "registry_proxy_coalesced_waits_total",
    "Blob misses that waited for a fetch already under way instead of fetching again.",
    ["cache"],
)

# --- backends

STORAGE_ACTION = Histogram(
    "registry_storage_action_seconds",
    "Time spent in each storage driver call (for streams and appends, only the time spent "
    "in the driver, not waiting for the client).",
    ["driver", "action"],
    buckets=ACTION_BUCKETS,
)
STORAGE_ERRORS = Counter(
    "registry_storage_errors_total",
    "Storage calls that failed because the store was unavailable (S3 unreachable, timing out, "
    "throttling, refusing the credentials or bucket).",
    ["driver", "action"],
)
COORDINATOR_ACTION = Histogram(
    "registry_coordinator_action_seconds",
    "Time spent in each coordinator call (upload sessions; locks are in "
    "registry_lock_wait_seconds).",
    ["coordinator", "action"],
    buckets=ACTION_BUCKETS,
)
COORDINATOR_ERRORS = Counter(
    "registry_coordinator_errors_total",
    "Coordinator calls that failed because it was unavailable (Redis unreachable, timing out, "
    "read-only, refusing the credentials).",
    ["coordinator", "action"],
)
LOCK_WAIT = Histogram(
    "registry_lock_wait_seconds",
    "Time waited to take a lock (an upload's), whether it was taken or not.",
    ["coordinator"],
    buckets=ACTION_BUCKETS,
)
LOCK_TIMEOUTS = Counter(
    "registry_lock_timeouts_total",
    "Lock waits that ran out because another request held the lock (answered 503).",
    ["coordinator"],
)

# --- the process

READY = Gauge(
    "registry_ready",
    "Result of the last /readyz check of this instance, per check: 1 passed, 0 failed.",
    ["check"],
    multiprocess_mode="mostrecent",
)
WORKERS = Gauge(
    "registry_worker_processes",
    "Worker processes of this instance that are alive and serving.",
    multiprocess_mode="livesum",
)
BUILD_INFO = Gauge(
    "registry_build_info",
    "Always 1; the labels say which version runs on which Python.",
    ["version", "python"],
    multiprocess_mode="max",
)


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def start_process() -> None:
    """Called once per serving process: counts it as a worker, states the build, and creates
    the series of fixed label sets, so that dashboards and alerts see 0 rather than nothing."""
    WORKERS.set(1)
    BUILD_INFO.labels(registry.__version__, platform.python_version()).set(1)
    for kind in ("blob", "manifest"):
        PUSHES.labels(kind)
        PULLS.labels(kind)
    for event in ("started", "completed", "failed", "cancelled"):
        UPLOAD_SESSIONS.labels(event)
    for kind in ("access", "refresh"):
        TOKENS_ISSUED.labels(kind)
    for method in ("basic", "bearer", "password", "refresh_token", "anonymous", "other"):
        for result in ("success", "failure"):
            AUTH_ATTEMPTS.labels(method, result)


def collector() -> CollectorRegistry:
    """What to render: the files of every worker in multiprocess mode, else this process."""
    if os.environ.get(MULTIPROC_ENV):
        registry_ = CollectorRegistry()
        MultiProcessCollector(registry_)  # type: ignore[no-untyped-call]
        return registry_
    return REGISTRY


def exposition(accept: str | None) -> tuple[bytes, str]:
    """The metrics in the format the scraper asked for (Prometheus text or OpenMetrics)."""
    encoder: Callable[[CollectorRegistry], bytes]
    encoder, content_type = choose_encoder(accept or "")
    return encoder(collector()), content_type


@contextlib.contextmanager
def timed_call(
    seconds: Histogram,
    errors: Counter,
    outage: type[Exception],
    excluded: Callable[[], float] = lambda: 0.0,
) -> Iterator[None]:
    """Observe one call of a storage driver or coordinator into `seconds`, and count the
    `outage` it raises (the backend unavailable) into `errors`. `excluded()` is the time within
    the call that was not the backend's (waiting for the client), left out of the duration."""
    started = time.perf_counter()
    try:
        yield
    except outage:
        errors.inc()
        raise
    finally:
        seconds.observe(max(time.perf_counter() - started - excluded(), 0.0))
