"""Observability: Prometheus metrics, health endpoints, structured logs.

Kept beside the layers it watches rather than inside them: storage and coordination are
instrumented by wrappers (`storage.py`, `coord.py`) that implement the same protocols, so the
drivers stay free of metrics code, and the HTTP side by one ASGI middleware (`middleware.py`).
`metrics.py` defines every metric; `logs.py` the log formats; `health.py` `/livez` and
`/readyz`; `exporter.py` the multiprocess directory and the separate metrics listener.
"""
