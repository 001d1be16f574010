"""What every connection of one server shares: limits, timeouts, the clock, the task registry.

Compiled with mypyc (setup.py): the drivers read these attributes several times per
request, and a native class turns each read into a field load instead of a dict lookup.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final

from bascule.aio.h2 import H2Driver
from bascule.aio.registry import ConnectionRegistry
from bascule.aio.tls import TlsInfo, server_context
from bascule.aio.transport import HttpDriver, proxy_settings
from bascule.config import Config
from bascule.logs import error_log
from bascule.proto.headers import DefaultHeaders

if TYPE_CHECKING:
    from bascule.metrics import Metrics

#: At most one "concurrency limit reached" line per this many seconds (a flood of
#: 503s would otherwise write one line each).
LIMIT_LOG_INTERVAL: Final = 5.0


_DAYS: Final = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
_MONTHS: Final = b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def http_date(seconds: float) -> bytes:
    """``seconds`` since the epoch as an IMF-fixdate (RFC 9110 §5.6.7), the Date format.

    Written out rather than taken from ``email.utils.formatdate``, whose package would
    cost every server about 0.7 MiB (docs/performance.md); the names are not localized.
    """
    t = time.gmtime(seconds)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday],
        t.tm_mday,
        _MONTHS[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


#: Whether ``asyncio.Task`` takes ``eager_start`` (Python 3.12+).
EAGER_TASKS: Final = hasattr(asyncio, "eager_task_factory")
#: ``asyncio.Task`` untyped: its ``eager_start`` (Python 3.12+) is unknown to 3.11's stubs.
_TASK: Final[Any] = asyncio.Task


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
        #: What each app task's context is a copy of: the server's, never another app's.
        self.context = contextvars.copy_context()
        #: Start app tasks eagerly (--eager-tasks, on Pythons that can: 3.12+).
        self.eager_tasks = config.eager_tasks and EAGER_TASKS
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

    def start_task(
        self, coro: Coroutine[Any, Any, None], name: str, inside_app: bool = False
    ) -> asyncio.Task[None] | None:
        """Run an app's ``coro`` in a task kept in ``tasks``; None if it has already ended.

        On Python 3.11, ``Task()`` without a name formats a ``Task-N`` one, and uvloop's
        ``create_task`` never passes the name on (it calls ``set_name`` afterwards): the
        Task built here with its name skips both, about a third of the cost of starting
        one.

        Each task runs in a copy of the server's context. ``inside_app``: the caller runs
        in another app's task (a pipelined request started by the previous app's last
        ``send``, a push). There a copy of the current context would hand the new task
        that app's context variables, so it gets a copy of the one the server kept (a
        task factory gets it as ``context``). Asking ``asyncio.current_task`` instead
        costs a Python call per request on 3.11.

        ``--eager-tasks`` (Python 3.12+ only) runs the task's first step now, with the
        task current: an app that never waits has then answered and finished without a
        turn of the loop, the ``WeakSet`` of all tasks or the registry. Not
        ``inside_app``: that step would run within the other app's frames and see, for
        one, the exception it is handling. A task factory set on the loop is honoured
        as ``create_task`` would, and it may start tasks eagerly itself
        (``asyncio.eager_task_factory``). Callers start tasks only where a finished
        response may run at once (docs/architecture.md).
        """
        loop = self.loop
        if loop.get_task_factory() is not None:
            if inside_app:
                task = loop.create_task(coro, name=name, context=self.context.copy())
            else:
                task = loop.create_task(coro, name=name)
        elif inside_app:
            task = asyncio.Task(coro, loop=loop, name=name, context=self.context.copy())
        elif not self.eager_tasks:  # from a protocol callback, whose context is the server's
            task = asyncio.Task(coro, loop=loop, name=name)
            self.tasks.add(task)
            return task
        else:
            task = _TASK(coro, loop=loop, name=name, eager_start=True)
        if task.done():
            return None
        self.tasks.add(task)
        return task

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
                date = http_date(time.time())
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
            elif type(driver) is not HttpDriver:  # a WebSocket session
                websockets += 1
        metrics.set_gauges(len(self.connections), streams, websockets)
