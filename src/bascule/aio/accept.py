"""Accepting connections, with pauses: the connection cap and descriptor exhaustion.

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
import resource
import socket
import ssl
from typing import TYPE_CHECKING, Any, cast

from bascule.aio.transport import HttpDriver
from bascule.logs import error_log

if TYPE_CHECKING:
    from bascule.aio.state import ServerState


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
        #: The listener named by the current failure run's log line (None: not logged),
        #: named again by the recovery line.
        self._failing_listener: Listener | None = None
        #: Where the next resume starts trying listeners (each resume starts at the next).
        self._first = 0
        #: Connections accepted since start (tells a resume that accepted from one that did not).
        self._accepted_count = 0
        self._failures = 0
        self._limit_pauses = 0
        self._logged_at = -ACCEPT_LOG_INTERVAL
        #: loop.time() of the last logged unexpected error of a retry (its own budget).
        self._error_logged_at = -ACCEPT_LOG_INTERVAL

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
            return
        self._retry()

    # accepting -----------------------------------------------------------------------

    def _accept(self, listener: Listener) -> None:
        """Accept what waits on ``listener``; pause on a failure or at the limit."""
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
            self._accepted_count += 1
            self._serve(conn, listener)

    def _serve(self, conn: socket.socket, listener: Listener) -> None:
        conn.setblocking(False)
        driver = HttpDriver(self.state)
        loop = self.loop
        task = loop.create_task(
            loop.connect_accepted_socket(
                lambda: cast(asyncio.Protocol, driver),
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
            with contextlib.suppress(ValueError, OSError):  # a closed socket's fileno() is -1
                self.loop.remove_reader(listener.sock.fileno())

    def _resume(self) -> None:
        if self.paused is None or self.closed:
            return
        self.paused = None
        self.state.connections.on_discard = None
        self.start()
        # Try now rather than when a listener turns readable: with an empty backlog it
        # does not, and a recovery from failed accept() calls (the kernel fails them for
        # want of a descriptor even with nobody waiting) would go unseen, and unlogged,
        # until the next client came. Each resume starts at the next listener, so that a
        # flood on one cannot keep the others waiting, and recovery counts only once every
        # listener accepted without a failure.
        listeners = self.listeners
        first = self._first % len(listeners) if listeners else 0
        self._first = first + 1
        accepted_before = self._accepted_count
        for listener in listeners[first:] + listeners[:first]:
            self._accept(listener)
            if self.paused is not None:
                break
        since = self._failing_since
        if since is None or self.paused == _PAUSED_ON_ERROR:
            return
        if self.paused is None or self._accepted_count > accepted_before:
            # Every listener accepted; or the connection limit stopped a resume that did
            # accept: descriptors were there, and the failures are over either way.
            self._recovered(since)

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
            try:
                self._resume()
            except Exception:  # the ticker runs this too: it must outlive the error
                self._resume_failed()

    def _resume_failed(self) -> None:
        """``_resume`` raised (called in its ``except``): back to paused on error, with no
        reader left behind and retries armed, as after a failed accept()."""
        self.paused = None  # half resumed, whatever it was: pause from scratch
        self._pause(_PAUSED_ON_ERROR)
        now = self.loop.time()
        if now - self._error_logged_at >= ACCEPT_LOG_INTERVAL:
            self._error_logged_at = now
            error_log.exception("unexpected error while resuming accept(); retried every second")

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
            self._failures = 0
        self._failures += 1
        self._pause(_PAUSED_ON_ERROR)
        if not self._may_log():
            return
        self._failing_listener = listener
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

    def _recovered(self, since: float) -> None:
        listener = self._failing_listener
        self._failing_since = None
        self._failing_listener = None
        if listener is not None:
            error_log.warning(
                "accepting connections on %s again after %.1fs (%d failed accept() call(s))",
                listener.address,
                self.loop.time() - since,
                self._failures,
            )
