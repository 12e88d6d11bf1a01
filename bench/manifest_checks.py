"""A manifest naming tens of thousands of blobs: how long its PUT takes, and how long a `GET
/v2/` sent to the same worker meanwhile waits.

    python bench/manifest_checks.py [--layers 25000] [--reps 3]

Two manifests, each with `--layers` layer descriptors: one whose layers the repository does
not hold (the answer is 400 MANIFEST_BLOB_UNKNOWN), and one naming 500 pushed layers over and
over (201). One worker on the filesystem; a second connection sends `GET /v2/` back to back
while each PUT runs, and the slowest of those answers is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

from rawhttp import Connection
from servers import start_ours

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
KNOWN = 500


def _push(conn: Connection, name: str, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    conn.request("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", body=data, expect=[201])
    return {"mediaType": LAYER, "digest": digest, "size": len(data)}


def _manifest(config: dict[str, object], layers: list[dict[str, object]]) -> bytes:
    doc = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": layers}
    return json.dumps(doc).encode()


def _timed_put(
    conn: Connection, ping: Connection, target: str, body: bytes
) -> tuple[float, float, int]:
    """Seconds the PUT took, the slowest `GET /v2/` meanwhile, and how many were answered."""
    done = threading.Event()
    slowest: list[float] = [0.0]
    answered: list[int] = [0]

    def pinging() -> None:
        while not done.is_set():
            started = time.perf_counter()
            ping.request("GET", "/v2/", expect=[200])
            slowest[0] = max(slowest[0], time.perf_counter() - started)
            answered[0] += 1

    pinger = threading.Thread(target=pinging)
    pinger.start()
    started = time.perf_counter()
    conn.request("PUT", target, headers={"Content-Type": MANIFEST}, body=body, expect=[201, 400])
    took = time.perf_counter() - started
    done.set()
    pinger.join(timeout=60)
    return took, slowest[0], answered[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=25_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="manifest-checks-") as work:
        server = start_ours(args.python, Path(work) / "data", workers=1)
        try:
            conn = Connection("127.0.0.1", server.port, server.auth)
            ping = Connection("127.0.0.1", server.port, server.auth, timeout=60)
            config = _push(conn, "bench/checks", b"{}")
            known = [_push(conn, "bench/checks", os.urandom(64)) for _ in range(KNOWN)]
            unknown = [
                {"mediaType": LAYER, "digest": "sha256:" + os.urandom(32).hex(), "size": 1}
                for _ in range(args.layers)
            ]
            cases = {
                "unknown layers (400)": _manifest(config, unknown),
                f"{KNOWN} known layers, repeated (201)": _manifest(
                    config, (known * (args.layers // KNOWN + 1))[: args.layers]
                ),
            }
            print(f"{args.layers} layer descriptors, {len(next(iter(cases.values()))) >> 20} MiB")
            for label, body in cases.items():
                for rep in range(args.reps):
                    took, slowest, answered = _timed_put(
                        conn, ping, f"/v2/bench/checks/manifests/r{rep}", body
                    )
                    print(
                        f"{label:<34} PUT {took * 1000:7.0f} ms   GET /v2/ meanwhile: "
                        f"{answered:4d} answered, slowest {slowest * 1000:6.0f} ms"
                    )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
