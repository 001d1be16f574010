"""The smuggling corpus through a real nginx in front of bascule: no desync.

nginx keeps HTTP/1.1 connections to bascule open between requests (an upstream
``keepalive`` pool), which is where smuggling bites: if bascule read a request's framing
differently from nginx, the bytes nginx forwarded as body would become a request of
bascule's own, and its response would be handed to the next client of that upstream
connection.  Each case goes to nginx on one connection; a normal request follows on
another.  bascule's app must never see the smuggled request, and the normal request must
get its own response.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import LiveServer
from tests.hostile.corpus import CASES, SMUGGLED_PATH, Case
from tests.hostile.support import Recorder, exchange, statuses


def _find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


NGINX = _find_nginx()
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


@dataclass
class Front:
    port: int
    upstream: LiveServer
    app: Recorder
    error_log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(root: Path, front: int, upstream: int) -> str:
    temp = root / "tmp"
    return f"""
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    # One request per client connection: whatever follows a request on the client
    # side is dropped by nginx, so a smuggled request can only come from a desync
    # on the upstream side.
    keepalive_timeout 0;
    upstream bascule {{
        server 127.0.0.1:{upstream};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{front};
        location / {{
            proxy_pass http://bascule;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise AssertionError(f"nginx does not listen on {port} after {timeout}s")


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    assert NGINX is not None
    root = tmp_path_factory.mktemp("nginx")
    (root / "tmp").mkdir()
    app = Recorder()
    upstream = LiveServer(app, http2=False, timeout_request_body=2.0).start()
    port = _free_port()
    config = root / "nginx.conf"
    config.write_text(_config(root, port, upstream.port))
    argv = [NGINX, "-g", "daemon off;", "-p", str(root), "-c", str(config)]
    with (root / "nginx.out").open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        _wait_listening(port, proc)
        yield Front(port, upstream, app, root / "error.log")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        upstream.stop()


def _normal_request(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return exchange(sock, b"GET %b HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_corpus_through_nginx(front: Front, case: Case) -> None:
    front.app.clear()
    with socket.create_connection(("127.0.0.1", front.port), timeout=5) as sock:
        data = exchange(sock, case.raw, timeout=8)
    # nginx answers (itself, or with bascule's answer) and closes: never a hang.
    codes = statuses(data)
    if case.id == "http-0.9":
        assert data == b"/"  # nginx speaks HTTP/0.9: a bare body, from bascule
    else:
        assert codes, data[:300]
        assert 200 <= codes[0] <= 599
    # Two normal requests on fresh client connections reuse the pooled upstream
    # connection; each must get its own answer.
    for n in range(2):
        path = f"/after-{case.id}-{n}"
        reply = _normal_request(front.port, path)
        assert statuses(reply) == [200], reply[:300]
        assert reply.endswith(path.encode()), reply[-200:]
    seen = front.app.seen
    paths = [s.path for s in seen]
    # The pool is in use: both came over one upstream connection (else the test proves
    # nothing about desync).
    assert seen[-1].client == seen[-2].client
    if not case.pipelined:
        assert SMUGGLED_PATH not in paths, f"desync: bascule saw {paths}"
    assert paths[-2:] == [f"/after-{case.id}-0", f"/after-{case.id}-1"]
    # One client request is at most one upstream request.
    assert len(paths) <= 2 + (2 if case.pipelined else 1), paths
