"""Gunicorn worker classes: gunicorn manages the processes, bascule serves HTTP in each one.

Use ``gunicorn -k bascule.workers.GunicornWorker app:app`` (asyncio's event loop) or
``-k bascule.workers.GunicornUVLoopWorker`` (uvloop).  The master process (arbiter) binds
the sockets, forks the workers, restarts them and handles its own signals; each worker
runs one bascule :class:`~bascule.aio.server.Server` on the inherited sockets, with the
app's lifespan.  How gunicorn settings map onto bascule's options: docs/gunicorn.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
from typing import Any, ClassVar

from gunicorn.workers.base import Worker

from bascule.aio.server import Server
from bascule.aio.tls import server_context
from bascule.asgi_types import Receive, Scope, Send
from bascule.config import CertReqs, Config, LogLevel, LoopChoice
from bascule.errors import BasculeError
from bascule.logs import access_log, error_log

#: gunicorn's arbiter stops everything when a worker exits with this status
#: (``Arbiter.WORKER_BOOT_ERROR``); bascule's Server returns 3 when lifespan startup fails.
WORKER_BOOT_ERROR = 3

#: Slowest heartbeat; gunicorn's timeout/2 when that is shorter.
MAX_HEARTBEAT = 1.0

_CERT_REQS = {
    ssl.CERT_NONE: CertReqs.NONE,
    ssl.CERT_OPTIONAL: CertReqs.OPTIONAL,
    ssl.CERT_REQUIRED: CertReqs.REQUIRED,
}


def config_from_gunicorn(cfg: Any, app: Any) -> Config:
    """bascule's Config for ``app`` from gunicorn's settings object ``cfg`` (validated)."""
    defaults = Config()
    options: dict[str, Any] = {
        "app": app,
        "workers": max(1, int(cfg.workers)),
        "backlog": int(cfg.backlog),
        # gunicorn's keepalive 0 turns keep-alive off; bascule cannot, so keeps its default.
        "timeout_keep_alive": (
            float(cfg.keepalive) if cfg.keepalive > 0 else defaults.timeout_keep_alive
        ),
        "timeout_graceful_shutdown": (
            float(cfg.graceful_timeout)
            if cfg.graceful_timeout > 0
            else defaults.timeout_graceful_shutdown
        ),
        # The arbiter, not the worker, replaces workers; ours only count (GunicornWorker).
        "max_requests": None,
        "limit_concurrency": int(cfg.worker_connections) or None,
        "proxy_headers": True,
        "forwarded_allow_ips": tuple(cfg.forwarded_allow_ips),
        "log_level": LogLevel(str(cfg.loglevel).lower()),
        "access_log": bool(cfg.accesslog),
    }
    root_path = getattr(cfg, "root_path", "") or ""
    if root_path:
        options["root_path"] = root_path.rstrip("/")
    if cfg.certfile:
        options["certfile"] = cfg.certfile
        options["keyfile"] = cfg.keyfile or None
        options["ca_certs"] = cfg.ca_certs or None
        options["cert_reqs"] = _CERT_REQS.get(cfg.cert_reqs, CertReqs.NONE)
        if cfg.ciphers:
            options["ciphers"] = cfg.ciphers
    return Config(**options).validate()


def _share_gunicorn_logging(log: Any) -> None:
    """Send bascule's loggers to gunicorn's handlers (its format, files and level)."""
    for ours, name in ((error_log, "error_log"), (access_log, "access_log")):
        theirs = getattr(log, name, None)
        handlers = list(theirs.handlers) if isinstance(theirs, logging.Logger) else []
        ours.handlers = handlers
        ours.propagate = False
        ours.disabled = not handlers
        if isinstance(theirs, logging.Logger):
            ours.setLevel(theirs.level)


class GunicornWorker(Worker):  # type: ignore[misc]
    """A gunicorn worker process serving an ASGI app with bascule on asyncio's loop.

    SIGTERM stops gracefully (in-flight requests finish within gunicorn's
    ``graceful_timeout``, then lifespan shutdown runs); SIGINT and SIGQUIT stop
    quickly (requests are cancelled).  The worker exits after ``max_requests``
    (+ jitter) requests and gunicorn starts a fresh one.
    """

    loop_choice: ClassVar[LoopChoice] = LoopChoice.ASYNCIO

    config: Config
    asgi_app: Any
    server: Server | None = None
    _stopped_by_signal = False

    def init_process(self) -> None:
        _share_gunicorn_logging(self.log)
        super().init_process()

    def load_wsgi(self) -> None:
        """Load the app (gunicorn), then build and check bascule's config before booting."""
        super().load_wsgi()
        from bascule.main import prepare_app  # noqa: PLC0415 - main imports the whole server

        try:
            self.config = config_from_gunicorn(self.cfg, self.wsgi)
            # A bad certificate stops gunicorn at boot instead of crash-looping workers.
            server_context(self.config, ["http/1.1"])
            app = prepare_app(self.config)
        except BasculeError as exc:
            self.log.error("bascule: %s", exc)
            sys.exit(WORKER_BOOT_ERROR)
        self.asgi_app = app if self.max_requests >= sys.maxsize else self._counting(app)

    def _counting(self, app: Any) -> Any:
        """``app`` wrapped to count requests and stop gracefully after ``max_requests``."""
        limit = self.max_requests

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "lifespan":
                self.nr += 1
                if self.nr == limit:
                    self.log.info(
                        "worker %d served %d requests (max_requests): restarting", self.pid, limit
                    )
                    self._stop(quick=False)
            await app(scope, receive, send)

        return counted

    def run(self) -> None:
        from bascule.main import loop_factory  # noqa: PLC0415

        try:
            with asyncio.Runner(loop_factory=loop_factory(self.loop_choice)) as runner:
                status = runner.run(self._serve())
        except BasculeError as exc:
            self.log.error("bascule: %s", exc)
            status = WORKER_BOOT_ERROR
        # Done serving: a late SIGTERM (systemd signals the whole cgroup, then the
        # arbiter forwards its own) has nothing left to stop.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if status == WORKER_BOOT_ERROR:
            sys.exit(WORKER_BOOT_ERROR)
        # A forced stop that gunicorn asked for (SIGINT/SIGQUIT) is still a normal exit.
        sys.exit(0 if self._stopped_by_signal else status)

    async def _serve(self) -> int:
        loop = asyncio.get_running_loop()
        self.server = server = Server(self.config, self.asgi_app)
        loop.add_signal_handler(signal.SIGTERM, self._on_signal, signal.SIGTERM, False)
        loop.add_signal_handler(signal.SIGINT, self._on_signal, signal.SIGINT, True)
        loop.add_signal_handler(signal.SIGQUIT, self._on_signal, signal.SIGQUIT, True)
        loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        loop.add_signal_handler(signal.SIGWINCH, lambda: None)
        if not self.alive:  # SIGTERM arrived while the app was being imported
            self._stopped_by_signal = True
            return 0
        heartbeat = loop.create_task(self._heartbeat())
        try:
            return await server.serve(
                install_signals=False, sockets=[listener.sock for listener in self.sockets]
            )
        finally:
            heartbeat.cancel()

    def _on_signal(self, sig: int, quick: bool) -> None:
        if not self.alive and not quick:
            return  # already stopping gracefully
        self.log.info(
            "worker %d received %s: %s stop",
            self.pid,
            signal.Signals(sig).name,
            "quick" if quick else "graceful",
        )
        self._stopped_by_signal = True
        if quick:
            self.cfg.worker_int(self)
        self._stop(quick)

    def _stop(self, quick: bool) -> None:
        """Stop serving: gracefully, or at once (in-flight requests cancelled)."""
        self.alive = False
        server = self.server
        if server is None:
            return
        if quick:
            server.force_exit = True
        server.should_exit.set()

    async def _heartbeat(self) -> None:
        """Tell the arbiter we are alive; stop when the arbiter is gone."""
        interval = min(MAX_HEARTBEAT, self.timeout / 2) if self.timeout > 0 else MAX_HEARTBEAT
        while True:
            self.notify()
            if self.alive and os.getppid() != self.ppid:
                self.log.info("worker %d: parent %d is gone, stopping", self.pid, self.ppid)
                self._stop(quick=False)
            await asyncio.sleep(interval)


class GunicornUVLoopWorker(GunicornWorker):
    """:class:`GunicornWorker` on uvloop's event loop (``pip install uvloop``)."""

    loop_choice: ClassVar[LoopChoice] = LoopChoice.UVLOOP


__all__ = ["GunicornUVLoopWorker", "GunicornWorker", "config_from_gunicorn"]
