"""Metrics shared across processes and their Prometheus text, scraped over a real socket."""

from __future__ import annotations

import os
import re

import httpx
import pytest

from bascule.metrics import Metrics, MetricsServer


def value(text: str, name: str) -> float:
    """The sample ``name`` (with its labels, as written) in Prometheus text."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in:\n{text}"
    return float(match.group(1))


def test_requests_are_counted_by_protocol_status_class_and_duration() -> None:
    metrics = Metrics.create(slots=1)
    metrics.observe_request("1.1", 200, 0.003, 100, 10)
    metrics.observe_request("1.1", 404, 0.2, 5, 0)
    metrics.observe_request("2", 503, 7.0, 0, 0)
    metrics.observe_request("2", 101, 0.0, 0, 0)
    text = metrics.render()
    assert value(text, 'bascule_requests_total{protocol="1.1",status="2xx"}') == 1
    assert value(text, 'bascule_requests_total{protocol="1.1",status="4xx"}') == 1
    assert value(text, 'bascule_requests_total{protocol="2",status="5xx"}') == 1
    assert value(text, 'bascule_requests_total{protocol="2",status="1xx"}') == 1
    assert value(text, 'bascule_requests_total{protocol="2",status="2xx"}') == 0
    # the histogram is cumulative
    assert value(text, 'bascule_request_duration_seconds_bucket{le="0.001"}') == 1
    assert value(text, 'bascule_request_duration_seconds_bucket{le="0.005"}') == 2
    assert value(text, 'bascule_request_duration_seconds_bucket{le="0.25"}') == 3
    assert value(text, 'bascule_request_duration_seconds_bucket{le="5"}') == 3
    assert value(text, 'bascule_request_duration_seconds_bucket{le="+Inf"}') == 4
    assert value(text, "bascule_request_duration_seconds_count") == 4
    assert value(text, "bascule_request_duration_seconds_sum") == pytest.approx(7.203)
    assert value(text, "bascule_response_bytes_total") == 105
    assert value(text, "bascule_request_bytes_total") == 10


def test_worker_processes_write_their_own_slots_and_the_totals_add_up() -> None:
    metrics = Metrics.create(slots=4)
    children = []
    for slot in (1, 2, 3):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                metrics.attach(slot)
                for _ in range(slot * 10):
                    metrics.observe_request("2", 200, 0.01, 1, 0)
                metrics.websocket_opened()
                metrics.set_gauges(connections=slot, streams=2 * slot, websockets=1)
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    text = metrics.render()
    assert value(text, 'bascule_requests_total{protocol="2",status="2xx"}') == 60
    assert value(text, "bascule_connections_open") == 6
    assert value(text, "bascule_http2_streams_open") == 12
    assert value(text, "bascule_websocket_sessions_open") == 3
    assert value(text, "bascule_websocket_sessions_total") == 3
    # a worker exits: its counters stay in the totals, its gauges go
    metrics.retire(3)
    metrics.worker_restarts += 1
    text = metrics.render()
    assert value(text, 'bascule_requests_total{protocol="2",status="2xx"}') == 60
    assert value(text, "bascule_websocket_sessions_total") == 3
    assert value(text, "bascule_connections_open") == 3
    assert value(text, "bascule_websocket_sessions_open") == 2
    assert value(text, "bascule_worker_restarts_total") == 1


def test_attach_rejects_a_slot_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        Metrics.create(slots=2).attach(2)


def test_metrics_are_scraped_over_http() -> None:
    metrics = Metrics.create()
    metrics.observe_request("1.1", 200, 0.002, 3, 0)
    server = MetricsServer("127.0.0.1:0", metrics).start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert value(response.text, 'bascule_requests_total{protocol="1.1",status="2xx"}') == 1
        # every sample line parses as the text format (name{labels} value)
        for line in response.text.splitlines():
            if not line.startswith("#"):
                assert re.fullmatch(r"[a-z0-9_]+(\{[^}]*\})? [0-9.e+]+", line), line
        missing = httpx.get(f"http://127.0.0.1:{server.port}/other", timeout=5)
        assert missing.status_code == 404
    finally:
        server.stop()
