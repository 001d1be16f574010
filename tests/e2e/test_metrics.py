"""--metrics-bind: Prometheus metrics of a real bascule process, in-process and with workers."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from .process import APPS_DIR, run_bascule, start_bascule

APP = ["e2e_metrics_app:app", "--app-dir", str(APPS_DIR), "--port", "0", "--no-access-log"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    return response.text


def sample(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in:\n{text}"
    return float(match.group(1))


OK_11 = 'bascule_requests_total{protocol="1.1",status="2xx"}'
OK_2 = 'bascule_requests_total{protocol="2",status="2xx"}'
MISSING = 'bascule_requests_total{protocol="1.1",status="4xx"}'


def test_single_process_counts_requests_streams_and_websockets(tmp_path: Path) -> None:
    metrics_port = free_port()
    args = [*APP, "--metrics-bind", f"127.0.0.1:{metrics_port}"]
    with start_bascule(args, tmp_path) as server:
        url = server.url
        with httpx.Client(timeout=5) as client:
            for _ in range(3):
                assert client.get(f"{url}/").status_code == 200
            assert client.get(f"{url}/missing").status_code == 404
            assert client.post(f"{url}/echo", content=b"x" * 1000).content == b"x" * 1000
        with httpx.Client(http1=False, http2=True, timeout=5) as h2:
            assert h2.get(f"{url}/").status_code == 200
        with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
        # a request head we refuse before the app is counted too
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no Host: 400
            assert sock.recv(100).startswith(b"HTTP/1.1 400")
        text = scrape(metrics_port)
        assert sample(text, OK_11) == 4
        assert sample(text, MISSING) == 2  # the 404 and the 400
        assert sample(text, OK_2) == 1
        assert sample(text, "bascule_request_duration_seconds_count") == 7
        assert sample(text, "bascule_request_bytes_total") == 1000
        assert sample(text, "bascule_response_bytes_total") >= 1000
        assert sample(text, "bascule_websocket_sessions_total") == 1
        # the gauges follow the open connections (refreshed at least every second)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            deadline = time.monotonic() + 5
            while sample(scrape(metrics_port), "bascule_connections_open") < 1:
                assert time.monotonic() < deadline, scrape(metrics_port)
                time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/", timeout=5).status_code == 404
        assert server.stop() == 0


def test_workers_are_summed_and_restarts_counted(tmp_path: Path) -> None:
    metrics_port = free_port()
    args = [*APP, "--workers", "2", "--metrics-bind", f"127.0.0.1:{metrics_port}"]
    with start_bascule(args, tmp_path) as server:
        pids: set[int] = set()
        for _ in range(40):  # new connections spread over both workers
            response = httpx.get(f"{server.url}/", timeout=5)
            pids.add(int(response.text))
        assert len(pids) == 2, pids
        text = scrape(metrics_port)
        assert sample(text, OK_11) == 40
        assert sample(text, "bascule_worker_restarts_total") == 0
        # a worker dies: its requests stay counted, the replacement counts as a restart
        os.kill(min(pids), signal.SIGKILL)
        deadline = time.monotonic() + 10
        while sample(scrape(metrics_port), "bascule_worker_restarts_total") < 1:
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.05)
        for _ in range(5):
            assert httpx.get(f"{server.url}/", timeout=5).status_code == 200
        text = scrape(metrics_port)
        assert sample(text, OK_11) == 45
        assert server.stop() == 0


def test_metrics_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_bascule([*APP, "--metrics-bind", f"127.0.0.1:{port}"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"--metrics-bind: cannot bind 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
