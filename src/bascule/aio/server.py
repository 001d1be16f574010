"""Server: listeners, the connection registry, the clock tick, signals and graceful shutdown.

Connections are accepted by ``bascule.aio.accept.Acceptor`` (not
``loop.create_server``), so that accepting can pause; see that module.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bascule._version import __version__
from bascule.aio.accept import Acceptor
from bascule.aio.lifespan import Lifespan
from bascule.aio.sockets import describe, inherited, open_listeners, unix_paths
from bascule.aio.state import ServerState
from bascule.aio.transport import HttpDriver
from bascule.config import Config, LifespanMode
from bascule.logs import error_log

if TYPE_CHECKING:
    from bascule.metrics import Metrics, MetricsServer


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
                # Only with --metrics-bind: http.server and its imports cost about 1 MiB.
                from bascule.metrics import Metrics, MetricsServer  # noqa: PLC0415

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
                if config.gc_freeze:
                    # What exists now (the app, its imports, the server) lives as long as
                    # the process: the collector need not scan it again. Under many
                    # streams in flight, full collections rescanned it (docs/performance.md).
                    gc.collect()
                    gc.freeze()
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
        # Connections accepted just before the shutdown (their transport is still
        # being set up) are waited for too: cancelling them would reset a client
        # whose request is already sent.
        while (
            (state.connections or state.tasks or (acceptor is not None and acceptor.starting))
            and loop.time() < deadline
            and not self.force_exit
        ):
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
