"""What every connection of one server shares: limits, timeouts, the clock, the task registry.

Compiled with mypyc (setup.py): the drivers read these attributes several times per
request, and a native class turns each read into a field load instead of a dict lookup.
"""

from __future__ import annotations

import asyncio
from email.utils import formatdate
from typing import Any

from bascule.aio.h2 import H2Driver
from bascule.aio.registry import ConnectionRegistry
from bascule.aio.tls import TlsInfo, server_context
from bascule.aio.transport import proxy_settings
from bascule.aio.websocket import WebSocketSession
from bascule.config import Config
from bascule.logs import error_log
from bascule.metrics import Metrics
from bascule.proto.headers import DefaultHeaders

#: At most one "concurrency limit reached" line per this many seconds (a flood of
#: 503s would otherwise write one line each).
LIMIT_LOG_INTERVAL = 5.0


class ServerState:
    """What every connection of one server shares."""

    def __init__(self, config: Config, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.app = app
        self.limits = config.http1_limits()
        self.ws_limits = config.ws_limits()
        self.h2_limits = config.h2_limits()
        self.http2 = config.http2
        self.ws_enabled = config.ws
        #: Upgrade tokens served; requests asking for others are plain HTTP.
        self.accept_upgrades = frozenset(
            ([b"websocket"] if config.ws else []) + ([b"h2c"] if config.http2 else [])
        )
        self.timeouts = config.timeouts()
        self.root_path = config.root_path
        #: --proxy-headers / --proxy-protocol, or None when both are off.
        self.proxy = proxy_settings(config)
        self.limit_concurrency = config.limit_concurrency
        self.connections: ConnectionRegistry = ConnectionRegistry()
        self.tasks: set[asyncio.Task[None]] = set()
        self.lifespan_state: dict[str, Any] | None = None
        self.extensions: dict[str, Any] = {}
        self.shutting_down = False
        self.now = loop.time()
        self._date_header = config.date_header
        self._static_headers: list[tuple[bytes, bytes]] = []
        if config.server_header:
            self._static_headers.append((b"server", b"bascule"))
        self._static_headers.extend(config.extra_headers())
        self.ssl_context = server_context(
            config, ["h2", "http/1.1"] if config.http2 else ["http/1.1"]
        )
        self.tls = TlsInfo(config, self.ssl_context) if self.ssl_context is not None else None
        self._second = -1
        self.default_headers = DefaultHeaders(self._static_headers)
        self._limit_logged_at = -LIMIT_LOG_INTERVAL
        self._limit_unlogged = 0
        #: Prometheus counters of this process (--metrics-bind), or None.
        self.metrics: Metrics | None = None
        self.tick()

    def over_concurrency(self, client: str, count_connections: bool = True) -> bool:
        """True (and logged, at most once per ``LIMIT_LOG_INTERVAL``) when a new request
        must get 503: ``--limit-concurrency`` requests, or connections, are in flight."""
        limit = self.limit_concurrency
        if limit is None or not (
            len(self.tasks) >= limit or (count_connections and len(self.connections) > limit)
        ):
            return False
        if self.now - self._limit_logged_at >= LIMIT_LOG_INTERVAL:
            more = self._limit_unlogged
            error_log.warning(
                "concurrency limit %d reached: 503 for %s%s",
                limit,
                client,
                f" (and {more} more since the last such line)" if more else "",
            )
            self._limit_logged_at = self.now
            self._limit_unlogged = 0
        else:
            self._limit_unlogged += 1
        return True

    def tick(self) -> None:
        """Advance the coarse clock, refresh Date, expire timed-out connections."""
        self.now = now = self.loop.time()
        if self._date_header:
            second = int(now)
            if second != self._second:
                self._second = second
                date = formatdate(usegmt=True).encode("ascii")
                self.default_headers = DefaultHeaders([(b"date", date), *self._static_headers])
        for driver in list(self.connections):
            driver.check_timeouts(now)
        if self.metrics is not None:
            self._gauges(self.metrics)

    def _gauges(self, metrics: Metrics) -> None:
        streams = websockets = 0
        for driver in self.connections:
            if type(driver) is H2Driver:
                streams += len(driver.streams)
                websockets += len(driver.websockets)
            elif type(driver) is WebSocketSession:
                websockets += 1
        metrics.set_gauges(len(self.connections), streams, websockets)
