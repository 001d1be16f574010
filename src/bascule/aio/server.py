"""Server: listeners, the connection registry, the clock tick, signals and graceful shutdown.

bascule accepts connections itself (``Acceptor``) rather than through
``loop.create_server``, so that accepting can pause: at ``--limit-max-connections``
open connections, and when ``accept()`` fails for want of file descriptors
(EMFILE/ENFILE) or kernel memory.  While paused, new connections wait in the
listen backlog; accepting resumes as soon as a connection closes, and at
least once a second (the tick).  ``loop.create_server`` can do neither:
CPython's retries after a second but logs one traceback per failed
``accept()`` (up to ``backlog`` of them per wake-up), and uvloop (libuv)
accepts every waiting connection and closes it at once without a word.
``docs/reliability.md`` (Connection caps and descriptor exhaustion) has the
measurements.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import resource
import signal
import socket
import ssl
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, TypeAlias

from bascule._version import __version__
from bascule.aio.h2 import H2Driver
from bascule.aio.lifespan import Lifespan
from bascule.aio.sockets import describe, inherited, open_listeners, unix_paths
from bascule.aio.tls import TlsInfo, server_context
from bascule.aio.transport import HttpDriver, proxy_settings
from bascule.aio.websocket import WebSocketSession
from bascule.config import Config, LifespanMode
from bascule.logs import error_log
from bascule.metrics import Metrics, MetricsServer
from bascule.proto.headers import DefaultHeaders

#: One open client connection, whichever protocol now drives it.
Connection: TypeAlias = "HttpDriver | WebSocketSession | H2Driver"


class ConnectionRegistry(set[Connection]):
    """``ServerState.connections``: a set that reports connections leaving it.

    Every driver discards itself in ``connection_lost``; ``on_discard`` (the
    acceptor's, while accepting is paused) then learns that a descriptor may
    have come free, without the drivers knowing about it.
    """

    __slots__ = ("on_discard",)

    def __init__(self) -> None:
        super().__init__()
        self.on_discard: Callable[[], None] | None = None

    def discard(self, element: object) -> None:
        super().discard(element)
        callback = self.on_discard
        if callback is not None:
            callback()


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
        #: Prometheus counters of this process (--metrics-bind), or None.
        self.metrics: Metrics | None = None
        self.tick()

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


#: accept() errors that concern only the connection being accepted (accept(2),
#: "Error handling": Linux passes pending network errors on): try the next one.
#: Any other error (EMFILE: this process's RLIMIT_NOFILE; ENFILE: the system's
#: file table; ENOBUFS/ENOMEM) pauses accepting until a connection closes.
_TRANSIENT = frozenset(
    {
        errno.ECONNABORTED,
        errno.EPROTO,
        errno.ENETDOWN,
        errno.ENOPROTOOPT,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EOPNOTSUPP,
        errno.EPERM,  # a firewall rule refused it
    }
)
#: Most connections accepted per wake-up of one listener, so that a flood of new
#: connections cannot starve the ones already open (asyncio takes up to
#: ``backlog`` at once, libuv all that wait).
ACCEPT_BATCH = 128
#: At most one log line per this many seconds about paused accepting; the
#: pauses and failures in between are counted in the next line.
ACCEPT_LOG_INTERVAL = 5.0

_PAUSED_AT_LIMIT = "limit"
_PAUSED_ON_ERROR = "error"


class Listener:
    """One listening socket and how its connections start."""

    __slots__ = ("address", "handshake_timeout", "sock", "ssl")

    def __init__(
        self, sock: socket.socket, address: str, context: ssl.SSLContext | None, timeout: float
    ) -> None:
        self.sock = sock
        self.address = address
        self.ssl = context
        self.handshake_timeout = None if context is None else timeout


class Acceptor:
    """Accepts the connections of every listener, and pauses accepting when it must.

    It pauses while ``limit`` connections are open (``--limit-max-connections``)
    and after an ``accept()`` failure (out of descriptors, or kernel memory).
    New connections then wait in the kernel's listen backlog.  Accepting resumes
    when a connection closes (the connection registry reports it), and the tick
    retries at least once a second.  Out of descriptors, each failure costs no
    more than one ``accept()`` call, and at most one log line per
    ``ACCEPT_LOG_INTERVAL`` seconds says so.
    """

    def __init__(self, state: ServerState, limit: int | None) -> None:
        self.state = state
        self.loop = state.loop
        self.limit = limit
        self.listeners: list[Listener] = []
        #: Accepted sockets not yet seen closed (kept only under a limit).
        self.accepted: set[socket.socket] = set()
        #: Connections being set up (transport, TLS handshake): their tasks.
        self.starting: set[asyncio.Task[Any]] = set()
        #: Why accepting is paused (_PAUSED_*), or None while it accepts.
        self.paused: str | None = None
        self.closed = False
        self._wake_pending = False
        #: loop.time() of the first failure of the current run of failures.
        self._failing_since: float | None = None
        self._failing_logged = False
        self._failures = 0
        self._limit_pauses = 0
        self._logged_at = -ACCEPT_LOG_INTERVAL

    def add(self, sock: socket.socket, address: str, context: ssl.SSLContext | None) -> None:
        sock.setblocking(False)
        self.listeners.append(Listener(sock, address, context, self.state.timeouts.request_header))

    def start(self) -> None:
        for listener in self.listeners:
            self.loop.add_reader(listener.sock.fileno(), self._accept, listener)

    def close(self) -> None:
        """Stop accepting for good (shutdown) and close the listening sockets: new
        connections are refused, and those waiting in the backlog are reset."""
        if self.closed:
            return
        self.closed = True
        self.state.connections.on_discard = None
        if self.paused is None:
            self._remove_readers()
        self.paused = None
        for listener in self.listeners:
            listener.sock.close()

    async def cancel_starting(self, timeout: float = 1.0) -> None:
        """Abandon the connections still being set up (TLS handshakes) once shutdown ends."""
        tasks = list(self.starting)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def open_count(self) -> int:
        """Accepted connections not closed yet (under a limit; else the registry's count)."""
        if self.limit is None:
            return len(self.state.connections) + len(self.starting)
        accepted = self.accepted
        accepted.difference_update([sock for sock in accepted if sock.fileno() < 0])
        return len(accepted)

    def tick(self) -> None:
        """Once a second or more: forget closed sockets, retry a paused accept."""
        if self.paused is None:
            if self.limit is not None:
                self.open_count()
        else:
            self._retry()

    # accepting -----------------------------------------------------------------------

    def _accept(self, listener: Listener) -> None:
        limit = self.limit
        accepted = self.accepted
        sock = listener.sock
        for _ in range(ACCEPT_BATCH):
            if limit is not None and len(accepted) >= limit and self.open_count() >= limit:
                self._pause_at_limit()
                return
            try:
                conn, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in _TRANSIENT:
                    continue
                self._failed(listener, exc)
                return
            if limit is not None:
                accepted.add(conn)
            self._serve(conn, listener)
        since = self._failing_since
        if since is not None:
            self._recovered(listener, since)

    def _serve(self, conn: socket.socket, listener: Listener) -> None:
        conn.setblocking(False)
        driver = HttpDriver(self.state)
        loop = self.loop
        task = loop.create_task(
            loop.connect_accepted_socket(
                lambda: driver,
                conn,
                ssl=listener.ssl,
                ssl_handshake_timeout=listener.handshake_timeout,
            )
        )
        self.starting.add(task)
        peer = driver.client_label
        if listener.ssl is not None:
            with contextlib.suppress(OSError):
                address = conn.getpeername()
                peer = f"{address[0]}:{address[1]}"
        task.add_done_callback(functools.partial(self._started, peer))

    def _started(self, peer: str, task: asyncio.Task[Any]) -> None:
        self.starting.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        # A failed TLS handshake (asyncio and uvloop only report it in debug mode).
        reason = str(exc) or type(exc).__name__
        error_log.warning("TLS handshake with %s failed: %s", peer, reason)
        if self.paused is not None:
            # The transport closed the socket, which no driver had registered;
            # a descriptor came free all the same.
            self._connection_closed()

    # pausing and resuming ------------------------------------------------------------------

    def _pause(self, reason: str) -> None:
        if self.paused is None and not self.closed:
            self._remove_readers()
            self.state.connections.on_discard = self._connection_closed
        self.paused = reason

    def _remove_readers(self) -> None:
        for listener in self.listeners:
            self.loop.remove_reader(listener.sock.fileno())

    def _resume(self) -> None:
        if self.paused is None or self.closed:
            return
        self.paused = None
        self.state.connections.on_discard = None
        self.start()

    def _connection_closed(self) -> None:
        """A connection left the registry: a descriptor may be free (checked next turn,
        once the transport has closed its socket)."""
        if not self._wake_pending:
            self._wake_pending = True
            self.loop.call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        self._retry()

    def _retry(self) -> None:
        """Resume a paused accept that may succeed now."""
        paused = self.paused
        if paused == _PAUSED_ON_ERROR or (
            paused == _PAUSED_AT_LIMIT and self.limit is not None and self.open_count() < self.limit
        ):
            self._resume()

    # reporting -----------------------------------------------------------------------------

    def _may_log(self) -> bool:
        now = self.loop.time()
        if now - self._logged_at < ACCEPT_LOG_INTERVAL:
            return False
        self._logged_at = now
        return True

    def _pause_at_limit(self) -> None:
        self._pause(_PAUSED_AT_LIMIT)
        self._limit_pauses += 1
        if self._may_log():
            pauses = self._limit_pauses
            self._limit_pauses = 0
            error_log.warning(
                "%d connections open (--limit-max-connections): accepting paused until one "
                "closes; new connections wait in the backlog%s",
                self.limit,
                f" (paused {pauses} times since the last report)" if pauses > 1 else "",
            )

    def _failed(self, listener: Listener, exc: OSError) -> None:
        if self._failing_since is None:
            self._failing_since = self.loop.time()
            self._failing_logged = False
            self._failures = 0
        self._failures += 1
        self._pause(_PAUSED_ON_ERROR)
        if not self._may_log():
            return
        self._failing_logged = True
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EMFILE:
            soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            reason += f" (ulimit -n {soft})"
        if self._failures > 1:
            reason += (
                f"; failing for {self.loop.time() - self._failing_since:.1f}s "
                f"({self._failures} failed accept() calls)"
            )
        error_log.error(
            "cannot accept connections on %s: %s; %d connection(s) open; accepting paused, "
            "retried as connections close and every second",
            listener.address,
            reason,
            self.open_count(),
        )

    def _recovered(self, listener: Listener, since: float) -> None:
        self._failing_since = None
        if self._failing_logged:
            error_log.warning(
                "accepting connections on %s again after %.1fs (%d failed accept() call(s))",
                listener.address,
                self.loop.time() - since,
                self._failures,
            )


class Server:
    """One process's server: bind, serve until a signal, shut down gracefully."""

    def __init__(self, config: Config, app: Any, metrics: Metrics | None = None) -> None:
        """``metrics``: a worker's slot of its supervisor's metrics (the supervisor
        serves them); by default, ``--metrics-bind`` makes this server count and
        serve its own."""
        self.config = config
        self.app = app
        self.metrics = metrics
        self._metrics_server: MetricsServer | None = None
        self.should_exit = asyncio.Event()
        self.force_exit = False
        #: Accepts on ``sockets`` once serving starts.
        self.acceptor: Acceptor | None = None
        self.sockets: list[socket.socket] = []
        self.state: ServerState | None = None
        self.addresses: list[str] = []
        self._startup_task: asyncio.Task[None] | None = None
        self._lifespan_shutdown: asyncio.Task[None] | None = None
        self._unix_paths: list[str] = []
        #: Seconds an idle keep-alive connection stays open once shutdown starts
        #: (0: closed at once); set by serve(drain=...).
        self._drain = 0.0

    def stuck_tasks(self) -> int:
        """App tasks still running after the shutdown cancelled them (they ignore it)."""
        state = self.state
        return 0 if state is None else sum(1 for task in state.tasks if not task.done())

    def handle_signal(self, sig: int) -> None:
        if self.should_exit.is_set():
            if sig in (signal.SIGINT, signal.SIGTERM):
                error_log.warning("second %s: forcing exit", signal.Signals(sig).name)
                self.force_exit = True
                self._force()
            return
        error_log.info("received %s: shutting down gracefully", signal.Signals(sig).name)
        self.should_exit.set()

    def _force(self) -> None:
        for task in (self._startup_task, self._lifespan_shutdown):
            if task is not None and not task.done():
                task.cancel()
        state = self.state
        if state is None:
            return
        for task in list(state.tasks):
            task.cancel()
        for driver in list(state.connections):
            driver.transport.abort()

    async def serve(
        self,
        install_signals: bool = True,
        sockets: list[socket.socket] | None = None,
        *,
        on_ready: Callable[[], None] | None = None,
        announce: bool = True,
        drain: float = 0.0,
    ) -> int:
        """Run until stopped; returns the process exit status.

        ``sockets``: listening sockets bound by someone else (a supervisor,
        gunicorn); by default the ones the options name are bound here.
        ``on_ready``: called once every listener accepts connections (after
        lifespan startup).  ``announce``: log one ``listening on`` line per
        listener (a supervisor logs its own instead).  ``drain``: when shutdown
        starts, idle HTTP/1.1 keep-alive connections stay open this many
        seconds, and a request that arrives on one meanwhile is answered with
        ``Connection: close`` (see ``_shutdown``); 0 closes them at once.

        0 after a graceful stop, 1 after a forced one (second signal),
        3 when lifespan startup fails.  Bind errors raise ConfigError.
        """
        config = self.config
        loop = asyncio.get_running_loop()
        self._drain = drain
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.handle_signal, sig)
        # Bind first: a bad address fails before the app's startup runs, and
        # clients that connect during startup wait in the backlog.
        if sockets is None:
            self.sockets = open_listeners(config)
            self._unix_paths = unix_paths(self.sockets)
        else:
            self.sockets = list(sockets)  # the caller's: closed here, files left to the caller
        lifespan: Lifespan | None = None
        try:
            if self.metrics is None and config.metrics_bind is not None:
                self.metrics = Metrics.create()
                self._metrics_server = MetricsServer(config.metrics_bind, self.metrics).start()
            if config.lifespan is not LifespanMode.OFF:
                lifespan = Lifespan(self.app, config.lifespan.value)
                self._startup_task = loop.create_task(lifespan.startup())
                try:
                    await self._startup_task
                except asyncio.CancelledError:
                    error_log.warning("lifespan startup interrupted: exiting")
                    lifespan.cancel()
                    return 1
                except Exception as exc:
                    error_log.error("%s", exc)
                    return 3
                if lifespan.supported:
                    error_log.info("application startup complete")
            state = self.state = ServerState(config, self.app, loop)
            state.metrics = self.metrics
            if lifespan is not None and lifespan.supported:
                state.lifespan_state = lifespan.state
            if not self.should_exit.is_set():
                await self._listen(state, announce)
                if on_ready is not None:
                    on_ready()
                ticker = loop.create_task(self._tick_forever(state))
                try:
                    await self.should_exit.wait()
                finally:
                    ticker.cancel()
            await self._shutdown(state)
            if lifespan is not None:
                self._lifespan_shutdown = loop.create_task(
                    lifespan.shutdown(config.timeout_graceful_shutdown)
                )
                try:
                    await self._lifespan_shutdown
                except asyncio.CancelledError:
                    error_log.warning("lifespan shutdown interrupted")
                    lifespan.cancel()
        finally:
            if self.acceptor is not None:
                self.acceptor.close()
            self._close_sockets()
            if self._metrics_server is not None:
                self._metrics_server.stop()
        error_log.info("bascule stopped (pid %d)", os.getpid())
        return 1 if self.force_exit else 0

    def _close_sockets(self) -> None:
        """Close what we bound and remove the unix socket files we created."""
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
        for path in self._unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)
        self._unix_paths.clear()

    async def _listen(self, state: ServerState, announce: bool = True) -> None:
        config = self.config
        acceptor = self.acceptor = Acceptor(state, config.limit_max_connections)
        for sock in self.sockets:
            tls = state.ssl_context is not None and sock.family != socket.AF_UNIX
            # A PROXY header comes before the TLS handshake: the driver does both.
            # A client that never finishes its handshake (slowloris on TLS) is cut
            # like one that never finishes its request head.
            context = state.ssl_context if tls and not config.proxy_protocol else None
            if not inherited(sock):  # fd:// and systemd sockets keep their owner's backlog
                sock.listen(config.backlog)
            address = describe(sock, tls=tls)
            acceptor.add(sock, address, context)
            self.addresses.append(address)
            if announce:
                error_log.info(
                    "bascule %s listening on %s (pid %d)", __version__, address, os.getpid()
                )
        acceptor.start()

    async def _tick_forever(self, state: ServerState) -> None:
        timeouts = state.timeouts
        interval = min(1.0, timeouts.keep_alive / 4, timeouts.request_header / 4)
        acceptor = self.acceptor
        while True:
            await asyncio.sleep(interval)
            state.tick()
            if acceptor is not None:
                acceptor.tick()

    async def _shutdown(self, state: ServerState) -> None:
        """Stop accepting, let requests in flight finish, close every connection.

        HTTP/1.1 has no way to tell a keep-alive client "no more requests
        here": closing an idle connection races with a request the client may
        be sending at that very moment, which then fails.  With ``drain`` (a
        worker being replaced while others keep serving), idle connections
        therefore stay open for the drain period: a request arriving on one is
        served with ``Connection: close`` (HttpDriver does that while
        ``shutting_down``), and only connections still idle at the end are
        closed.  HTTP/2 gets GOAWAY and WebSockets a 1001 close as before.
        """
        state.shutting_down = True
        acceptor = self.acceptor
        if acceptor is not None:
            acceptor.close()
        drain = self._drain
        for driver in list(state.connections):
            if drain and isinstance(driver, HttpDriver):
                # What HttpDriver.shutdown() does, minus closing it while idle.
                driver.conn.keep_alive = False
            else:
                driver.shutdown()
        loop = state.loop
        state.tick()
        start = loop.time()
        deadline = start + self.config.timeout_graceful_shutdown
        idle_deadline = start + min(drain, self.config.timeout_graceful_shutdown)
        while (state.connections or state.tasks) and loop.time() < deadline and not self.force_exit:
            await asyncio.sleep(0.05)
            state.tick()
            idle_expired = loop.time() >= idle_deadline
            for driver in list(state.connections):
                if driver.busy:
                    continue
                if drain and isinstance(driver, HttpDriver):
                    if idle_expired and driver.head_started is None:
                        driver.transport.close()
                else:
                    driver.transport.close()
        if state.tasks or state.connections:
            if not self.force_exit:
                error_log.warning(
                    "graceful shutdown timed out: cancelling %d request(s), "
                    "closing %d connection(s)",
                    len(state.tasks),
                    len(state.connections),
                )
            self._force()
            # Cancelled tasks get 5 s to finish; a second signal stops the wait.
            deadline = loop.time() + 5
            while state.tasks and loop.time() < deadline and not self.force_exit:
                await asyncio.wait(list(state.tasks), timeout=0.1)
        if acceptor is not None:
            await acceptor.cancel_starting()
