"""Prometheus metrics, shared by every worker process, served on ``--metrics-bind``.

Each process writes its own numbers into its own *slot* of one shared memory
block (an anonymous ``mmap``, inherited across ``fork``), without locks: one
writer per slot, 8-byte aligned doubles.  The process that serves the metrics
(the supervisor, or the only process) sums the slots when scraped.  A slot
whose worker exited is folded into the ``retired`` totals before it is reused,
so counters never go backwards.

    metrics = Metrics.create(slots=64)
    metrics.attach(slot=3)                        # in worker 3, after fork
    metrics.observe_request("1.1", 200, 0.0012, 512, 17)
    text = metrics.render()                        # Prometheus text format 0.0.4
"""

from __future__ import annotations

import mmap
import threading
from bisect import bisect_left
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from bascule.config import split_host_port
from bascule.errors import ConfigError
from bascule.logs import error_log

#: Upper bounds (seconds) of the request duration histogram buckets (+Inf is implied).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PROTOCOLS = ("1.1", "2")
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

# Layout of one slot: offsets of each value (doubles).
_REQ = 0  # requests_total[protocol][class]: len(PROTOCOLS) * len(CLASSES)
_HIST = _REQ + len(PROTOCOLS) * len(CLASSES)  # bucket counts (non-cumulative), +Inf last
_DUR_SUM = _HIST + len(BUCKETS) + 1
_DUR_COUNT = _DUR_SUM + 1
_BYTES_IN = _DUR_COUNT + 1
_BYTES_OUT = _BYTES_IN + 1
_WS_TOTAL = _BYTES_OUT + 1
_CONNECTIONS = _WS_TOTAL + 1  # gauges from here on: not folded into retired totals
_STREAMS = _CONNECTIONS + 1
_WS_OPEN = _STREAMS + 1
_SLOT_VALUES = _WS_OPEN + 1
_COUNTERS = _CONNECTIONS  # values [0, _COUNTERS) are counters

_SLOT_BYTES = _SLOT_VALUES * 8


class Metrics:
    """The shared counters of a server (all its worker processes)."""

    def __init__(self, buffer: Any, slots: int) -> None:
        self._buffer = buffer
        self._all = memoryview(buffer).cast("d")
        self.slots = slots
        self._retired = [0.0] * _COUNTERS
        self.worker_restarts = 0
        self.slot = 0
        self._mine = self._all[0:_SLOT_VALUES]

    @classmethod
    def create(cls, slots: int = 1) -> Metrics:
        """A zeroed block of ``slots`` slots, shared with processes forked later."""
        size = max(1, slots) * _SLOT_BYTES
        return cls(mmap.mmap(-1, size), max(1, slots))

    def attach(self, slot: int) -> None:
        """Write to ``slot`` from now on (a worker process, after fork)."""
        if not 0 <= slot < self.slots:
            raise ValueError(f"metrics slot {slot} out of range 0..{self.slots - 1}")
        self.slot = slot
        start = slot * _SLOT_VALUES
        self._mine = self._all[start : start + _SLOT_VALUES]

    def retire(self, slot: int) -> None:
        """Fold a finished worker's counters into the totals and zero its slot."""
        start = slot * _SLOT_VALUES
        values = self._all[start : start + _SLOT_VALUES]
        for i in range(_COUNTERS):
            self._retired[i] += values[i]
        for i in range(_SLOT_VALUES):
            values[i] = 0.0

    # what workers record -----------------------------------------------------------

    def observe_request(
        self, protocol: str, status: int, duration: float, sent: int, received: int
    ) -> None:
        """One answered HTTP request."""
        mine = self._mine
        row = 1 if protocol == "2" else 0
        klass = min(max(status // 100, 1), 5) - 1
        mine[_REQ + row * len(CLASSES) + klass] += 1
        mine[_HIST + bisect_left(BUCKETS, duration)] += 1
        mine[_DUR_SUM] += duration
        mine[_DUR_COUNT] += 1
        mine[_BYTES_OUT] += sent
        mine[_BYTES_IN] += received

    def websocket_opened(self) -> None:
        self._mine[_WS_TOTAL] += 1

    def set_gauges(self, connections: int, streams: int, websockets: int) -> None:
        """Open connections, HTTP/2 streams and WebSocket sessions of this process."""
        mine = self._mine
        mine[_CONNECTIONS] = connections
        mine[_STREAMS] = streams
        mine[_WS_OPEN] = websockets

    # the scrape --------------------------------------------------------------------------

    def _totals(self) -> list[float]:
        totals = self._retired + [0.0] * (_SLOT_VALUES - _COUNTERS)
        values = self._all
        for slot in range(self.slots):
            start = slot * _SLOT_VALUES
            for i in range(_SLOT_VALUES):
                totals[i] += values[start + i]
        return totals

    def render(self) -> str:
        """Every metric, summed over the processes, in Prometheus text format."""
        t = self._totals()
        lines = [
            "# HELP bascule_requests_total HTTP requests answered, by protocol and status class.",
            "# TYPE bascule_requests_total counter",
        ]
        for row, protocol in enumerate(PROTOCOLS):
            for col, klass in enumerate(CLASSES):
                value = t[_REQ + row * len(CLASSES) + col]
                lines.append(
                    f'bascule_requests_total{{protocol="{protocol}",status="{klass}"}} {value:g}'
                )
        lines += [
            "# HELP bascule_request_duration_seconds Time from request head to response end.",
            "# TYPE bascule_request_duration_seconds histogram",
        ]
        cumulative = 0.0
        for i, bound in enumerate((*BUCKETS, None)):
            cumulative += t[_HIST + i]
            le = "+Inf" if bound is None else f"{bound:g}"
            lines.append(f'bascule_request_duration_seconds_bucket{{le="{le}"}} {cumulative:g}')
        lines.append(f"bascule_request_duration_seconds_sum {t[_DUR_SUM]:.6f}")
        lines.append(f"bascule_request_duration_seconds_count {t[_DUR_COUNT]:g}")
        for name, kind, index, text in (
            ("bascule_request_bytes_total", "counter", _BYTES_IN, "Request body bytes received."),
            ("bascule_response_bytes_total", "counter", _BYTES_OUT, "Response body bytes sent."),
            ("bascule_websocket_sessions_total", "counter", _WS_TOTAL, "WebSocket sessions."),
            ("bascule_connections_open", "gauge", _CONNECTIONS, "Open client connections."),
            ("bascule_http2_streams_open", "gauge", _STREAMS, "Open HTTP/2 streams."),
            ("bascule_websocket_sessions_open", "gauge", _WS_OPEN, "Open WebSocket sessions."),
        ):
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {t[index]:g}"]
        lines += [
            "# HELP bascule_worker_restarts_total Worker processes replaced by the supervisor.",
            "# TYPE bascule_worker_restarts_total counter",
            f"bascule_worker_restarts_total {self.worker_restarts}",
        ]
        return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` on its own listener, answered from a thread (scrapes are rare)."""

    def __init__(self, address: str, metrics: Metrics) -> None:
        host, port = split_host_port(address)
        handler = type("Handler", (_Handler,), {"metrics": metrics})
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"--metrics-bind: cannot bind {address}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="bascule-metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        error_log.info("metrics on http://%s:%d/metrics", self.httpd.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    metrics: ClassVar[Metrics]
    server_version = "bascule-metrics"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, b"not found: metrics are at /metrics\n", "text/plain")
            return
        body = self.metrics.render().encode()
        self._answer(200, body, "text/plain; version=0.0.4; charset=utf-8")

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not access-logged."""
