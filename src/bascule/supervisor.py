"""The pre-fork supervisor behind ``--workers N``, ``--max-requests`` and ``--reload``.

Theory of operation
-------------------
The supervisor binds every listener once, then forks worker processes that
serve those inherited sockets (the kernel spreads new connections over the
workers that accept).  It never imports the application: each worker imports
it after the fork, so a worker started after a code change runs the new code.

The supervisor is single-threaded and runs a ``selectors`` loop over:

- a self-pipe woken by signals (``signal.set_wakeup_fd``); the handlers only
  queue the signal number, the loop acts on it;
- one status pipe per worker, on which the worker writes one byte:
  ``R`` once it listens (after lifespan startup), ``M`` when it served
  ``--max-requests`` requests and wants a replacement;
- with ``--reload``, the pipe of the file watcher process (bascule.reload).

Workers hold the read end of a "lifeline" pipe whose write end only the
supervisor keeps: if the supervisor dies, they see EOF and stop gracefully.

Every worker that should exist is counted against ``target``: a new worker
started to *replace* another (SIGHUP, max-requests) is not counted until it is
ready; then the old one is sent SIGTERM (graceful stop) and the new one takes
its place.  Workers asked to stop are "retiring" and get SIGKILL if still
alive ``--timeout-graceful-shutdown`` + KILL_MARGIN seconds later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from bascule._version import __version__
from bascule.aio.server import Server
from bascule.aio.sockets import describe, open_listeners, unix_paths
from bascule.config import Config
from bascule.errors import AppLoadError, ConfigError
from bascule.logs import configure_logging, error_log
from bascule.main import loop_factory, prepare_app
from bascule.reload import Watcher, parse_changes, start_watcher

if TYPE_CHECKING:
    from bascule.metrics import Metrics, MetricsServer

#: Worker → supervisor messages (one byte each on the worker's status pipe).
READY = b"R"
RECYCLE = b"M"

#: Seconds past --timeout-graceful-shutdown before a stopping worker is killed
#: (its lifespan shutdown runs after the requests are done or cancelled).
KILL_MARGIN = 2.0
#: Respawn delay after consecutive crashes: 0.1 s, doubling, at most 10 s.
BACKOFF_FIRST = 0.1
BACKOFF_MAX = 10.0
#: A worker that ran this long before crashing resets the crash streak.
HEALTHY_AFTER = 10.0
#: How long a stopping worker keeps idle HTTP/1.1 keep-alive connections open,
#: answering what arrives on them with "Connection: close" (Server.serve drain).
DRAIN_IDLE = 1.0
#: Worker slots in the shared metrics block (workers past it are not counted).
METRIC_SLOTS = 256

_HANDLED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)


def _ignore_signal(sig: int, frame: FrameType | None) -> None:
    """Workers leave these signals to the supervisor."""


def needs_supervisor(config: Config) -> bool:
    """True when the options need worker processes (else serve in this process)."""
    return config.workers > 1 or config.reload or config.max_requests is not None


@contextlib.contextmanager
def pid_file(path: str | None) -> Iterator[None]:
    """Write this process's PID to ``path`` (if given) and remove the file at exit."""
    if path is None:
        yield
        return
    pid = str(os.getpid())
    tmp = f"{path}.{pid}.tmp"
    try:
        # O_EXCL | O_NOFOLLOW: never write through a link someone planted at the temp name.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(pid + "\n")
        os.replace(tmp, path)  # readers never see a half-written file
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise ConfigError(f"--pid: cannot write {path}: {exc.strerror}") from None
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(path, encoding="ascii") as f:
                mine = f.read().strip() == pid
            if mine:  # not a file a newer server wrote since
                os.unlink(path)


def describe_status(code: int) -> str:
    """``exit status 3`` or ``signal 9 SIGKILL`` from os.waitstatus_to_exitcode()."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "?"
        return f"signal {-code} {name}"
    return f"exit status {code}"


@dataclass(eq=False)
class Worker:
    """One worker process as the supervisor sees it."""

    pid: int
    fd: int
    generation: int
    started: float
    ready: bool = False
    retiring: bool = False
    kill_at: float | None = None
    #: The worker this one takes over from once ready (SIGHUP, max-requests).
    replaces: Worker | None = None
    replaced_by: Worker | None = None
    #: Its slot in the shared metrics (--metrics-bind), or None.
    slot: int | None = None


class Supervisor:
    """Bind, fork workers, keep ``target`` of them running until stopped."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.reload = config.reload
        if self.reload and not isinstance(config.app, str):
            raise ConfigError("--reload: the app must be given as a 'module:attribute' string")
        self.target = 1 if self.reload else max(1, config.workers)
        self.workers: dict[int, Worker] = {}
        self.by_fd: dict[int, Worker] = {}
        self.generation = 0
        self.sockets: list[socket.socket] = []
        self.selector = selectors.DefaultSelector()
        self.signals: list[int] = []
        self.booted = False
        self.stopping = False
        self.exit_status = 0
        self.crash_streak = 0
        self.spawn_after = 0.0
        self.hup_round = False
        self.hup_in_flight: Worker | None = None
        #: --reload: the last worker failed to start; wait for the next change.
        self.waiting_for_change = False
        self.watcher: Watcher | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)  # set_wakeup_fd() requires it
        self._lifeline_r, self._lifeline_w = os.pipe()
        self._saved_handlers: dict[int, Any] = {}
        #: --metrics-bind: every worker writes its own slot; the supervisor serves the sums.
        self.metrics: Metrics | None = None
        if config.metrics_bind:
            from bascule.metrics import Metrics  # noqa: PLC0415 (only with --metrics-bind)

            self.metrics = Metrics.create(METRIC_SLOTS)
        self.free_slots = list(range(METRIC_SLOTS - 1, -1, -1))
        self.metrics_server: MetricsServer | None = None

    # main loop ------------------------------------------------------------------

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT (or a failed start); the exit status."""
        config = self.config
        if self.reload and config.workers > 1:
            error_log.warning("--reload runs a single worker: --workers %d ignored", config.workers)
        try:
            self.sockets = open_listeners(config)
            paths = unix_paths(self.sockets)
            try:
                if self.metrics is not None and config.metrics_bind is not None:
                    from bascule.metrics import MetricsServer  # noqa: PLC0415

                    self.metrics_server = MetricsServer(config.metrics_bind, self.metrics).start()
                with pid_file(config.pid):
                    self._install_signals()
                    if self.reload:
                        self.watcher = start_watcher(config, self._fds_for_children())
                        self.selector.register(self.watcher.fd, selectors.EVENT_READ)
                    return self._loop()
            finally:
                for sock in self.sockets:
                    sock.close()
                for path in paths:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
        finally:
            self._cleanup()
            if self.metrics_server is not None:
                self.metrics_server.stop()

    def _loop(self) -> int:
        self.selector.register(self._wake_r, selectors.EVENT_READ)
        error_log.info(
            "supervisor %d starting %d worker%s",
            os.getpid(),
            self.target,
            "" if self.target == 1 else "s",
        )
        self._reconcile(time.monotonic())
        while True:
            timeout = self._timeout(time.monotonic())
            for key, _ in self.selector.select(timeout):
                self._readable(key.fd)
            while self.signals:
                self._on_signal(self.signals.pop(0))
            self._reap()
            now = time.monotonic()
            self._kill_overdue(now)
            if self.stopping:
                if not self.workers:
                    error_log.info("supervisor %d stopped", os.getpid())
                    return self.exit_status
            else:
                self._reconcile(now)

    def _timeout(self, now: float) -> float:
        moments = [w.kill_at for w in self.workers.values() if w.kill_at is not None]
        if self.spawn_after > now:
            moments.append(self.spawn_after)
        return max(0.0, min([now + 0.5, *moments]) - now)

    def _readable(self, fd: int) -> None:
        if fd == self._wake_r:
            with contextlib.suppress(BlockingIOError, InterruptedError):
                os.read(fd, 4096)
            return
        if self.watcher is not None and fd == self.watcher.fd:
            data = os.read(fd, 65536)
            if not data:
                self.selector.unregister(fd)
                return
            self._on_change(parse_changes(data))
            return
        worker = self.by_fd.get(fd)
        if worker is None:
            return
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:  # the worker exited (reaped by _reap)
            self._forget_fd(worker)
            return
        for byte in data:
            if byte == READY[0]:
                self._on_ready(worker)
            elif byte == RECYCLE[0]:
                self._on_recycle(worker)

    def _forget_fd(self, worker: Worker) -> None:
        """Close the worker's status pipe, once: its number may belong to a newer pipe later."""
        fd = worker.fd
        if fd >= 0 and self.by_fd.get(fd) is worker:
            del self.by_fd[fd]
            self.selector.unregister(fd)
            os.close(fd)
        worker.fd = -1

    # signals --------------------------------------------------------------------

    def _install_signals(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        for sig in _HANDLED:
            self._saved_handlers[sig] = signal.signal(sig, self._queue_signal)

    def _queue_signal(self, sig: int, frame: FrameType | None) -> None:
        self.signals.append(sig)

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if sig in (signal.SIGINT, signal.SIGTERM):
            if self.stopping:
                error_log.warning("second %s: killing the workers", name)
                self.exit_status = 1
                for worker in self.workers.values():
                    self._kill(worker, signal.SIGKILL)
                return
            error_log.info("received %s: stopping %d worker(s) gracefully", name, len(self.workers))
            self._stop_all(0)
        elif self.stopping or sig == signal.SIGCHLD:
            return
        elif sig == signal.SIGHUP:
            if self.reload:
                self._on_change([])
                return
            self.generation += 1
            old = [w for w in self.workers.values() if not w.retiring and w.replaces is None]
            error_log.info("SIGHUP: replacing %d worker(s) one by one", len(old))
            self.hup_round = True
        elif self.reload:
            error_log.info("%s ignored with --reload (one worker)", name)
        elif sig == signal.SIGTTIN:
            self.target += 1
            error_log.info("SIGTTIN: %d workers", self.target)
        elif sig == signal.SIGTTOU:
            if self.target > 1:
                self.target -= 1
                error_log.info("SIGTTOU: %d worker(s)", self.target)
            else:
                error_log.info("SIGTTOU: keeping the last worker")

    def _stop_all(self, status: int) -> None:
        self.stopping = True
        self.exit_status = status
        now = time.monotonic()
        for worker in list(self.workers.values()):
            self._retire(worker, now)

    # workers ----------------------------------------------------------------------

    def _reconcile(self, now: float) -> None:
        """Start or stop workers so that ``target`` are running."""
        workers = self.workers.values()
        if self.reload:
            # Development: the old worker stops before the new one starts.
            if not self.waiting_for_change and not self.workers and now >= self.spawn_after:
                self._spawn(now)
            return
        in_flight = self.hup_in_flight
        if self.hup_round and (
            in_flight is None or in_flight.pid not in self.workers or in_flight.replaces is None
        ):
            self.hup_in_flight = None
            old = [
                w
                for w in workers
                if w.generation < self.generation and not w.retiring and w.replaced_by is None
            ]
            if old:
                self.hup_in_flight = self._spawn(now, replaces=old[0])
            else:
                self.hup_round = False
                error_log.info("SIGHUP: every worker replaced")
        regular = [w for w in workers if not w.retiring and w.replaces is None]
        if len(regular) < self.target and now >= self.spawn_after:
            for _ in range(self.target - len(regular)):
                self._spawn(now)
        elif len(regular) > self.target:
            extra = sorted(regular, key=lambda w: (w.replaced_by is None, w.started))
            for worker in extra[: len(regular) - self.target]:
                error_log.info("stopping worker %d (%d wanted)", worker.pid, self.target)
                self._retire(worker, now)

    def _spawn(self, now: float, replaces: Worker | None = None) -> Worker:
        slot = None
        if self.metrics is not None:
            if self.booted:
                self.metrics.worker_restarts += 1
            if self.free_slots:
                slot = self.free_slots.pop()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child; tests see it through its behaviour
            status = 1
            try:
                os.close(read_end)
                status = self._become_worker(write_end, slot)
            except BaseException:
                error_log.exception("worker %d crashed", os.getpid())
            finally:
                with contextlib.suppress(Exception):
                    sys.stdout.flush()
                    sys.stderr.flush()
                os._exit(status)
        os.close(write_end)
        worker = Worker(pid, read_end, self.generation, now, replaces=replaces, slot=slot)
        if replaces is not None:
            replaces.replaced_by = worker
        self.workers[pid] = worker
        self.by_fd[read_end] = worker
        self.selector.register(read_end, selectors.EVENT_READ)
        if replaces is None:
            error_log.info("worker %d started", pid)
        else:
            error_log.info("worker %d started to replace worker %d", pid, replaces.pid)
        return worker

    def _fds_for_children(self) -> list[int]:
        """The supervisor's own descriptors, closed in every child."""
        fds = [self._wake_r, self._wake_w, self._lifeline_w, *self.by_fd]
        if self.metrics_server is not None:
            fds.append(self.metrics_server.httpd.fileno())
        if self.watcher is not None:
            fds.append(self.watcher.fd)
        return fds

    def _become_worker(self, status_fd: int, slot: int | None) -> int:  # pragma: no cover
        """In the forked child: drop the supervisor's state, then serve."""
        signal.set_wakeup_fd(-1)
        for sig in _HANDLED:
            signal.signal(sig, signal.SIG_DFL)
        # The supervisor stops workers with SIGTERM; Ctrl-C in a terminal reaches
        # the whole process group, so workers leave SIGINT (and the supervisor's
        # other signals) to the supervisor.
        # A no-op handler rather than SIG_IGN: an ignored disposition would
        # survive exec into the app's own subprocesses.
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, _ignore_signal)
        with contextlib.suppress(Exception):
            self.selector.close()
        for fd in self._fds_for_children():
            with contextlib.suppress(OSError):
                os.close(fd)
        if self.reload:
            # An edit in the same second with the same size would otherwise let
            # a stale .pyc win over the new source.
            sys.dont_write_bytecode = True
        drain = 0.0 if self.reload else min(DRAIN_IDLE, self.config.timeout_keep_alive)
        metrics = None
        if self.metrics is not None and slot is not None:
            metrics = self.metrics
            metrics.attach(slot)
        return run_worker(self.config, self.sockets, status_fd, self._lifeline_r, drain, metrics)

    def _on_ready(self, worker: Worker) -> None:
        worker.ready = True
        error_log.info("worker %d ready", worker.pid)
        self.waiting_for_change = False
        old = worker.replaces
        if old is not None:
            worker.replaces = None
            old.replaced_by = None
            if old.pid in self.workers and not old.retiring:
                error_log.info("worker %d replaced by worker %d: stopping it", old.pid, worker.pid)
                self._retire(old, time.monotonic())
        if not self.booted and not self.stopping:
            regular = [w for w in self.workers.values() if not w.retiring]
            if len(regular) >= self.target and all(w.ready for w in regular):
                self.booted = True
                self._announce()

    def _announce(self) -> None:
        tls = self.config.certfile is not None
        for sock in self.sockets:
            address = describe(sock, tls=tls and sock.family != socket.AF_UNIX)
            error_log.info(
                "bascule %s listening on %s (supervisor pid %d, %d worker%s)",
                __version__,
                address,
                os.getpid(),
                self.target,
                "" if self.target == 1 else "s",
            )

    def _on_recycle(self, worker: Worker) -> None:
        if self.stopping or worker.retiring or worker.replaced_by is not None:
            return
        error_log.info("worker %d reached --max-requests: replacing it", worker.pid)
        self._spawn(time.monotonic(), replaces=worker)

    def _on_change(self, paths: list[str]) -> None:
        if self.stopping:
            return
        shown = ", ".join(os.path.relpath(p) for p in paths[:5])
        more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
        error_log.info(
            "%s: restarting the worker", f"changed: {shown}{more}" if paths else "SIGHUP"
        )
        self.waiting_for_change = False
        self.crash_streak = 0
        self.spawn_after = 0.0
        now = time.monotonic()
        for worker in list(self.workers.values()):
            self._retire(worker, now)

    def _retire(self, worker: Worker, now: float) -> None:
        if worker.retiring:
            return
        worker.retiring = True
        worker.kill_at = now + self.config.timeout_graceful_shutdown + KILL_MARGIN
        self._kill(worker, signal.SIGTERM)

    def _kill(self, worker: Worker, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, sig)

    def _kill_overdue(self, now: float) -> None:
        for worker in self.workers.values():
            if worker.kill_at is not None and now >= worker.kill_at:
                error_log.warning(
                    "worker %d still running %.3gs after SIGTERM: SIGKILL",
                    worker.pid,
                    self.config.timeout_graceful_shutdown + KILL_MARGIN,
                )
                worker.kill_at = None
                self._kill(worker, signal.SIGKILL)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            if self.watcher is not None and pid == self.watcher.pid:
                error_log.error("file watcher exited (%s): stopping", describe_status(code))
                self.watcher = None
                if not self.stopping:
                    self._stop_all(1)
                continue
            worker = self.workers.pop(pid, None)
            if worker is not None:
                self._exited(worker, code, time.monotonic())

    def _exited(self, worker: Worker, code: int, now: float) -> None:
        self._forget_fd(worker)
        if self.metrics is not None and worker.slot is not None:
            self.metrics.retire(worker.slot)  # its counts stay in the totals
            self.free_slots.append(worker.slot)
        status = describe_status(code)
        replaced = worker.replaces
        if replaced is not None:
            replaced.replaced_by = None
        if worker.replaced_by is not None:
            worker.replaced_by.replaces = None
        if worker.retiring or self.stopping:
            error_log.info("worker %d stopped (%s)", worker.pid, status)
            return
        if not worker.ready:
            if self.reload:
                error_log.error(
                    "worker %d failed to start (%s): waiting for a file change", worker.pid, status
                )
                self.waiting_for_change = True
                return
            if not self.booted:
                error_log.error(
                    "worker %d failed to start (%s): stopping; see the error above",
                    worker.pid,
                    status,
                )
                self._stop_all(code if code > 0 else 1)
                return
            if replaced is not None:
                error_log.error(
                    "new worker %d failed to start (%s): worker %d keeps serving",
                    worker.pid,
                    status,
                    replaced.pid,
                )
                if self.hup_round:
                    error_log.error("SIGHUP: replacement abandoned, the old workers keep serving")
                    self.hup_round = False
                    for other in self.workers.values():
                        other.generation = self.generation
                return
        lived = now - worker.started
        if worker.ready and lived >= HEALTHY_AFTER:
            self.crash_streak = 0
        else:
            self.crash_streak += 1
        delay = 0.0
        if self.crash_streak:
            delay = min(BACKOFF_FIRST * 2 ** (self.crash_streak - 1), BACKOFF_MAX)
        self.spawn_after = now + delay
        error_log.warning(
            "worker %d exited (%s): replacing%s",
            worker.pid,
            status,
            f" in {delay:.1f}s" if delay else "",
        )

    def _cleanup(self) -> None:
        """Leave no child behind (also when the loop raised) and restore signals."""
        for worker in list(self.workers.values()):
            self._kill(worker, signal.SIGKILL)
        for worker in list(self.workers.values()):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(worker.pid, 0)
        if self.watcher is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.watcher.pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.watcher.pid, 0)
            os.close(self.watcher.fd)
        signal.set_wakeup_fd(-1)
        for sig, handler in self._saved_handlers.items():
            signal.signal(sig, handler)
        self.selector.close()
        for fd in (self._wake_r, self._wake_w, self._lifeline_r, self._lifeline_w):
            with contextlib.suppress(OSError):
                os.close(fd)


# the worker process -------------------------------------------------------------------


class RequestCounter:
    """ASGI wrapper counting HTTP requests and WebSocket sessions for --max-requests."""

    def __init__(self, app: Any, limit: int, on_limit: Callable[[], None]) -> None:
        self.app = app
        self.limit = limit
        self.on_limit = on_limit
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            self.count += 1
            if self.count % self.limit == 0:
                # Again every ``limit`` requests: a replacement that failed to
                # start is asked for once more.
                self.on_limit()
        await self.app(scope, receive, send)


def run_worker(
    config: Config,
    sockets: list[socket.socket],
    status_fd: int,
    lifeline_fd: int,
    drain: float,
    metrics: Metrics | None = None,
) -> int:  # pragma: no cover - runs in worker processes
    """A worker's life: import the app, serve the inherited sockets; the exit status."""
    configure_logging(config)
    try:
        app = prepare_app(config)
    except AppLoadError as exc:
        error_log.error("worker %d cannot load the app: %s", os.getpid(), exc)
        return 1
    limit = None
    if config.max_requests is not None:
        limit = config.max_requests + random.randint(0, config.max_requests_jitter)
    with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
        return runner.run(
            _serve(config, app, sockets, status_fd, lifeline_fd, drain, limit, metrics)
        )


async def _serve(
    config: Config,
    app: Any,
    sockets: list[socket.socket],
    status_fd: int,
    lifeline_fd: int,
    drain: float,
    limit: int | None,
    metrics: Metrics | None,
) -> int:  # pragma: no cover - runs in worker processes
    loop = asyncio.get_running_loop()

    def tell(message: bytes) -> None:
        with contextlib.suppress(OSError):
            os.write(status_fd, message)

    def at_limit() -> None:
        error_log.info(
            "worker %d served %d requests (--max-requests): asking for a replacement",
            os.getpid(),
            limit,
        )
        tell(RECYCLE)

    counted = app if limit is None else RequestCounter(app, limit, at_limit)
    if metrics is None and config.metrics_bind is not None:
        from bascule.metrics import Metrics  # noqa: PLC0415

        metrics = Metrics.create()  # no slot left: count privately, never serve the address
    server = Server(config, counted, metrics)

    def supervisor_gone() -> None:
        loop.remove_reader(lifeline_fd)
        if not server.should_exit.is_set():
            error_log.warning("worker %d: supervisor gone, stopping", os.getpid())
            server.should_exit.set()

    loop.add_signal_handler(signal.SIGTERM, server.handle_signal, signal.SIGTERM)
    loop.add_reader(lifeline_fd, supervisor_gone)
    return await server.serve(
        install_signals=False,
        sockets=sockets,
        on_ready=lambda: tell(READY),
        announce=False,
        drain=drain,
    )
