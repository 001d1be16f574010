"""gunicorn's process management with bascule's worker classes: the real ``gunicorn`` command.

Each test runs ``python -m gunicorn -k bascule.workers.<class> -b 127.0.0.1:0 ...`` in a
subprocess through tests/e2e/process.py (the command is swapped for gunicorn's; readiness is
bascule's ``listening on`` line, one per worker) and stops it by the master's PID.
"""

from __future__ import annotations

import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from gunicorn.config import KNOWN_SETTINGS

from . import process
from .process import APPS_DIR, BasculeProcess, child_env, start_bascule

ROOT = APPS_DIR.parent.parent.parent
APP = "tests.e2e.apps.e2e_sockets_app:app"
WORKER = "bascule.workers.GunicornWorker"
UVLOOP_WORKER = "bascule.workers.GunicornUVLoopWorker"
HTTP_TIMEOUT = 10.0
SLEEP_BODY = b"slept\n" * 1000  # e2e_sockets_app.SLEEP_BODY

# gunicorn >= 25 opens a control socket in ~/.gunicorn; tests running side by side must not share it.
_NO_CONTROL = (
    ["--no-control-socket"]
    if any("--no-control-socket" in (getattr(s, "cli", None) or []) for s in KNOWN_SETTINGS)
    else []
)


def gunicorn_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "gunicorn", *args]


@pytest.fixture
def gunicorn(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``start(worker_class, workers, *extra)``: a running gunicorn (context manager)."""
    monkeypatch.setattr(process, "bascule_command", gunicorn_command)

    def start(worker_class: str = WORKER, workers: int = 1, *extra: str) -> Any:
        args = ["-k", worker_class, "-w", str(workers), "-b", "127.0.0.1:0", *_NO_CONTROL]
        args += ["--graceful-timeout", "10", *extra, APP]
        return start_bascule(args, ROOT, listeners=workers)

    return start


def fetch(url: str) -> httpx.Response:
    """A GET on a fresh connection."""
    with httpx.Client(timeout=HTTP_TIMEOUT) as client:
        return client.get(url)


def pids_answering(server: BasculeProcess, want: int, attempts: int = 100) -> dict[int, Any]:
    """Worker pid → the app's JSON, over fresh connections until ``want`` pids answered."""
    seen: dict[int, Any] = {}
    for _ in range(attempts):
        body = fetch(f"{server.url}/").json()
        seen[body["pid"]] = body
        if len(seen) >= want:
            break
    return seen


def test_two_workers_answer_with_lifespan(gunicorn: Any) -> None:
    with gunicorn(WORKER, 2) as server:
        seen = pids_answering(server, 2)
        assert len(seen) == 2, "both workers answer"
        assert server.pid not in seen, "the master does not serve"
        for pid, body in seen.items():
            assert body["started_by"] == pid, "each worker ran lifespan startup itself"
            assert body["loop"].startswith("asyncio")
        startups = [line for line in server.lines if "e2e-sockets: startup pid=" in line]
        assert len(startups) == 2
        assert server.stop() == 0
    shutdowns = [line for line in server.lines if "e2e-sockets: shutdown pid=" in line]
    assert len(shutdowns) == 2, "lifespan shutdown ran in each worker"


def test_uvloop_worker_serves(gunicorn: Any) -> None:
    pytest.importorskip("uvloop")
    with gunicorn(UVLOOP_WORKER, 1) as server:
        body = fetch(f"{server.url}/").json()
        assert body["loop"].startswith("uvloop")
        assert body["started_by"] == body["pid"]


class Slow(threading.Thread):
    """A /sleep request on its own thread."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.response: httpx.Response | None = None
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            self.response = fetch(self.url)
        except Exception as exc:
            self.error = exc


def test_sigterm_lets_the_in_flight_request_finish(gunicorn: Any) -> None:
    with gunicorn(WORKER, 2) as server:
        slow = Slow(f"{server.url}/sleep?seconds=1.5")
        slow.start()
        server.wait_for_line("e2e-sockets: sleeping")
        server.signal(signal.SIGTERM)
        assert server.wait(HTTP_TIMEOUT) == 0
        slow.join(HTTP_TIMEOUT)
        assert slow.error is None, slow.error
        assert slow.response is not None
        assert slow.response.status_code == 200
        assert slow.response.content == SLEEP_BODY
        server.wait_for_line("received SIGTERM: graceful stop")


def test_sigint_stops_quickly(gunicorn: Any) -> None:
    with gunicorn(WORKER, 1) as server:
        slow = Slow(f"{server.url}/sleep?seconds=30")
        slow.start()
        server.wait_for_line("e2e-sockets: sleeping")
        started = time.monotonic()
        server.signal(signal.SIGINT)
        server.wait(HTTP_TIMEOUT)
        assert time.monotonic() - started < 5, "the 30 s request was not waited for"
        slow.join(HTTP_TIMEOUT)
        assert slow.response is None or slow.response.status_code != 200
        server.wait_for_line("received SIGQUIT: quick stop")


def test_max_requests_recycles_workers_without_failures(gunicorn: Any) -> None:
    extra = ["--max-requests", "4", "--max-requests-jitter", "2"]
    with gunicorn(WORKER, 2, *extra) as server:
        pids = []
        for _ in range(30):
            response = fetch(f"{server.url}/")
            assert response.status_code == 200
            pids.append(response.json()["pid"])
        # Each worker serves at most 6 requests: 30 requests need at least 5 processes.
        assert len(set(pids)) >= 5
        for pid in set(pids):
            assert pids.count(pid) <= 6
        server.wait_for_line(r"requests \(max_requests\): restarting")
        assert server.stop() == 0


def test_lifespan_startup_failure_stops_gunicorn(tmp_path: Path) -> None:
    # One worker: with several failing at once gunicorn 27's own halt path raises again.
    args = ["-k", WORKER, "-w", "1", "-b", "127.0.0.1:0", *_NO_CONTROL]
    args += ["--chdir", str(APPS_DIR), "e2e_lifespan:startup_fails"]
    result = subprocess.run(
        gunicorn_command(args),
        cwd=tmp_path,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3, result.stderr  # gunicorn's "Worker failed to boot"
    assert "db down" in result.stderr
    assert "Worker failed to boot" in result.stderr


def test_tls_from_gunicorn_certfile(gunicorn: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with gunicorn(WORKER, 1, "--certfile", str(certfile), "--keyfile", str(keyfile)) as server:
        url = server.addresses[0]
        assert url.startswith("https://127.0.0.1:")
        with httpx.Client(timeout=HTTP_TIMEOUT, verify=context) as client:
            response = client.get(f"{url}/")
        assert response.json()["scheme"] == "https"


def test_gunicorn_settings_map_to_bascule_options() -> None:
    from gunicorn.config import Config as GunicornConfig

    from bascule.config import CertReqs, LogLevel
    from bascule.workers import config_from_gunicorn

    cfg = GunicornConfig()
    for name, value in [
        ("keepalive", "7"),
        ("graceful_timeout", "12"),
        ("worker_connections", "50"),
        ("forwarded_allow_ips", "10.0.0.1,10.0.0.2"),
        ("loglevel", "warning"),
        ("workers", "3"),
        ("backlog", "64"),
    ]:
        cfg.set(name, value)
    config = config_from_gunicorn(cfg, "some.module:app")
    assert config.timeout_keep_alive == 7.0
    assert config.timeout_graceful_shutdown == 12.0
    assert config.limit_concurrency == 50
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == ("10.0.0.1", "10.0.0.2")
    assert config.log_level is LogLevel.WARNING
    assert config.workers == 3
    assert config.backlog == 64
    assert config.certfile is None
    assert config.cert_reqs is CertReqs.NONE
    cfg.set("keepalive", "0")
    assert config_from_gunicorn(cfg, "m:app").timeout_keep_alive == 5.0  # bascule's default
