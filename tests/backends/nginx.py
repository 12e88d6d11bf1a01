"""A real nginx in front of registry instances, configured as docs/production.md and
deploy/compose/nginx.conf recommend: one upstream of every instance, request bodies streamed
(`proxy_request_buffering off`), no size limit, HTTP/1.1 with reused upstream connections.

It runs in the foreground on a free loopback port with its logs in its own directory, and
counts as started once it answers (see `ServerProcess`).
"""

from __future__ import annotations

import http.client
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.backends.process import ServerProcess

CONFIG = """\
worker_processes 1;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream registry {{
{servers}
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        proxy_request_buffering off;
        proxy_buffering off;
        location / {{
            proxy_pass http://registry;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"""


def _nginx() -> str:
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if path is None:
        pytest.skip("nginx is not installed (Debian package nginx-light)")
    return path


class NginxProcess(ServerProcess):
    what = "nginx"

    def __init__(self, directory: Path, upstreams: Sequence[str]) -> None:
        super().__init__(directory)
        self.upstreams = tuple(upstreams)  # HOST:PORT of each instance

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        servers = "\n".join(f"        server {address};" for address in self.upstreams)
        conf = self.dir / "nginx.conf"
        conf.write_text(CONFIG.format(dir=self.dir, port=self.port, servers=servers))
        pid = self.dir / "nginx.pid"
        args = [_nginx(), "-p", str(self.dir), "-c", str(conf), "-g", f"daemon off; pid {pid};"]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self._wait_ready(self.dir / "error.log")

    def answers(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            connection.request("GET", "/v2/")
            return connection.getresponse().status == 401  # an instance answered through it
        finally:
            connection.close()

    def error_log(self) -> str:
        return (self.dir / "error.log").read_text(errors="replace")
