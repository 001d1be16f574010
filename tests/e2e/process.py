"""Run the real ``bascule`` command in a subprocess for end-to-end tests.

``start_bascule()`` launches ``python -m bascule ...`` in a directory of the
test's choosing, reads its stderr on a thread and waits (bounded) until every
``listening on ADDRESS`` line has appeared; the context manager always stops
the process by its PID: SIGTERM, then SIGKILL after a bound.
``run_bascule()`` runs the command to completion for options or apps that
make it exit at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

#: Directory holding the test apps (pass it with ``--app-dir``).
APPS_DIR = Path(__file__).resolve().parent / "apps"

READY_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0

_LISTENING = re.compile(r"listening on (\S+)")
_HTTP_ADDRESS = re.compile(r"^http://(?:\[(?P<ip6>[^\]]+)\]|(?P<host>[^:/]+)):(?P<port>\d+)$")


def bascule_command(args: Sequence[str]) -> list[str]:
    """The command line that runs bascule with ``args``."""
    return [sys.executable, "-m", "bascule", *args]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The subprocess environment: ours, unbuffered, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONWARNINGS", None)
    if extra:
        env.update(extra)
    return env


class ServerExited(AssertionError):
    """The server process ended (or never got ready) while a test waited for it."""


class BasculeProcess:
    """A running ``bascule`` subprocess and the stderr it has written so far."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.args = list(args)
        self.proc = subprocess.Popen(
            bascule_command(args),
            cwd=cwd,
            env=child_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self.pid = self.proc.pid
        self.addresses: list[str] = []
        self._lines: list[str] = []
        self._eof = False
        self._cond = threading.Condition()
        self._reader = threading.Thread(
            target=self._read_stderr, name=f"bascule-stderr-{self.pid}", daemon=True
        )
        self._reader.start()

    # stderr ---------------------------------------------------------------------

    def _read_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        try:
            for line in stream:
                with self._cond:
                    self._lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    @property
    def stderr(self) -> str:
        """Everything the process wrote to stderr so far."""
        with self._cond:
            return "\n".join(self._lines)

    @property
    def lines(self) -> list[str]:
        """The stderr lines so far."""
        with self._cond:
            return list(self._lines)

    def wait_for_line(self, pattern: str | re.Pattern[str], timeout: float = READY_TIMEOUT) -> str:
        """The first stderr line matching ``pattern`` (searched), waiting at most ``timeout``."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self._lines)
                if self._eof:
                    raise ServerExited(
                        f"bascule exited (status {self.proc.poll()}) before logging "
                        f"{regex.pattern!r}; stderr:\n{self.stderr_unlocked()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServerExited(
                        f"no stderr line matching {regex.pattern!r} within {timeout}s; "
                        f"stderr:\n{self.stderr_unlocked()}"
                    )
                self._cond.wait(remaining)

    def stderr_unlocked(self) -> str:
        """stderr for messages built while holding the lock (Condition is reentrant)."""
        return "\n".join(self._lines)

    def wait_ready(self, listeners: int = 1, timeout: float = READY_TIMEOUT) -> list[str]:
        """Wait until ``listeners`` ``listening on ADDRESS`` lines appeared; their addresses."""
        self._wait_for_count(_LISTENING, listeners, timeout)
        found = [m.group(1) for line in self.lines if (m := _LISTENING.search(line))]
        self.addresses = found[:listeners]
        return self.addresses

    def _wait_for_count(self, regex: re.Pattern[str], count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for line in self._lines if regex.search(line)) < count:
                if self._eof:
                    raise ServerExited(
                        f"bascule exited (status {self.proc.poll()}) before it was ready; "
                        f"stderr:\n{self.stderr_unlocked()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServerExited(
                        f"bascule not ready within {timeout}s; stderr:\n{self.stderr_unlocked()}"
                    )
                self._cond.wait(remaining)

    # addresses ------------------------------------------------------------------

    @property
    def port(self) -> int:
        """Port of the first TCP listener."""
        return http_port(self.http_addresses[0])

    @property
    def http_addresses(self) -> list[str]:
        """The ``http://host:port`` listeners."""
        return [a for a in self.addresses if a.startswith("http://")]

    @property
    def url(self) -> str:
        """Base URL of the first TCP listener."""
        return self.http_addresses[0]

    # process control ----------------------------------------------------------------

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the server process (by PID) if it still runs."""
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        """Wait (bounded) for the process to exit; its status.  Raises TimeoutExpired."""
        status = self.proc.wait(timeout)
        self._reader.join(timeout=5)
        return status

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """SIGTERM, wait ``timeout``; SIGKILL if still alive.  The exit status."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(KILL_TIMEOUT)
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        status = self.proc.returncode
        assert status is not None
        return status


def http_port(address: str) -> int:
    """The port of ``http://host:port`` or ``http://[v6]:port``."""
    m = _HTTP_ADDRESS.match(address)
    if m is None:
        raise ValueError(f"not an http address: {address!r}")
    return int(m.group("port"))


@contextlib.contextmanager
def start_bascule(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    listeners: int = 1,
    ready: bool = True,
    stop_timeout: float = STOP_TIMEOUT,
) -> Iterator[BasculeProcess]:
    """Start bascule with ``args`` in ``cwd``; wait until it listens (if ``ready``); stop it.

    ``args`` should bind port 0 (``--port 0`` or ``--bind 127.0.0.1:0``) so the
    OS picks a free port; the port is parsed from the log line.
    """
    server = BasculeProcess(args, cwd, env)
    try:
        if ready:
            server.wait_ready(listeners)
        yield server
    finally:
        server.stop(stop_timeout)


def run_bascule(
    args: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = READY_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run bascule to completion (bounded by ``timeout``), capturing stdout and stderr."""
    return subprocess.run(
        bascule_command(args),
        cwd=cwd,
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
