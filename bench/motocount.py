"""moto's S3 server (the same app and HTTP server as `moto_server`) that counts its requests.

    python bench/motocount.py --port 5005

Every request is tallied by bucket and S3 operation (named from the method, the query and the
copy-source header, as S3 routes them): how many, bytes in and out, and the seconds moto spent
on them. `GET /_bench/counts` returns the tallies as JSON; the bench reads them before and after
each registry operation. The request log line of the development server is turned off: it
would cost moto time per request without telling more than the tallies.

It runs as a process of its own so that moto does not share an interpreter lock with the bench
client or a registry.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

COUNTS_PATH = "/_bench/counts"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def operation(method: str, path: str, query: str, copy_source: bool) -> tuple[str, str]:
    """(bucket, S3 operation name) of a path-style request."""
    bucket, _, key = path.lstrip("/").partition("/")
    q = parse_qs(query, keep_blank_values=True)
    if not key:
        if method == "GET" and "uploads" in q:
            return bucket, "ListMultipartUploads"
        if method == "GET":
            return bucket, "ListObjectsV2" if q.get("list-type") == ["2"] else "ListObjects"
        if method == "POST" and "delete" in q:
            return bucket, "DeleteObjects"
        return bucket, {"PUT": "CreateBucket", "HEAD": "HeadBucket"}.get(method, method + "Bucket")
    if "uploadId" in q:
        if method == "PUT":
            return bucket, "UploadPartCopy" if copy_source else "UploadPart"
        names = {
            "POST": "CompleteMultipartUpload",
            "DELETE": "AbortMultipartUpload",
            "GET": "ListParts",
        }
        return bucket, names.get(method, method + "Multipart")
    if method == "POST" and "uploads" in q:
        return bucket, "CreateMultipartUpload"
    if method == "PUT":
        return bucket, "CopyObject" if copy_source else "PutObject"
    names = {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
    return bucket, names.get(method, method + "Object")


class Tally:
    """Counters by bucket and operation: [requests, bytes in, bytes out, seconds]."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, list[float]]] = {}

    def add(self, bucket: str, op: str, sent: int, received: int, seconds: float) -> None:
        with self._lock:
            row = self._counts.setdefault(bucket, {}).setdefault(op, [0, 0, 0, 0.0])
            row[0] += 1
            row[1] += sent
            row[2] += received
            row[3] += seconds

    def snapshot(self) -> dict[str, dict[str, list[float]]]:
        with self._lock:
            return {b: {op: list(v) for op, v in ops.items()} for b, ops in self._counts.items()}


class Counting:
    """WSGI middleware: tallies each request once its response body has been sent."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.tally = Tally()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == COUNTS_PATH:
            body = json.dumps(self.tally.snapshot()).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("200 OK", headers)
            return [body]
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "")
        bucket, op = operation(
            method,
            path,
            environ.get("QUERY_STRING", ""),
            "HTTP_X_AMZ_COPY_SOURCE" in environ,
        )
        sent = int(environ.get("CONTENT_LENGTH") or 0)
        out: list[int] = [0]

        def recording(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            for name, value in headers:
                if name.lower() == "content-length" and method != "HEAD":
                    out[0] = int(value)
            return start_response(status, headers, *rest)

        body_iter = self.app(environ, recording)
        return self._finish(body_iter, bucket, op, sent, out, started)

    def _finish(
        self,
        body: Iterable[bytes],
        bucket: str,
        op: str,
        sent: int,
        out: list[int],
        started: float,
    ) -> Iterator[bytes]:
        try:
            yield from body
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            self.tally.add(bucket, op, sent, out[0], time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    import os

    os.environ.setdefault("MOTO_PORT", str(args.port))
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]  # as moto_server sets it
    run_simple(
        args.host,
        args.port,
        Counting(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
