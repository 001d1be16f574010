"""End-to-end tests of ``--workers``: the supervisor, its signals, --max-requests, --pid.

Real ``bascule`` processes on 127.0.0.1; the test app answers with the PID of
the worker that served the request (tests/e2e/apps/e2e_pid.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .process import APPS_DIR, BasculeProcess, run_bascule, start_bascule

APP = ["e2e_pid:app", "--app-dir", str(APPS_DIR), "--port", "0"]
QUIET = ["--no-access-log"]
READY = re.compile(r"worker (\d+) ready")
TIMEOUT = 10.0


def ready_pids(server: BasculeProcess) -> list[int]:
    """PIDs of the workers the supervisor reported ready so far, in order."""
    return [int(m.group(1)) for line in server.lines if (m := READY.search(line))]


def wait_ready_count(server: BasculeProcess, count: int, timeout: float = TIMEOUT) -> list[int]:
    """Wait (bounded) until ``count`` 'worker N ready' lines were logged."""
    deadline = time.monotonic() + timeout
    while len(pids := ready_pids(server)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} ready workers:\n{server.stderr}"
        assert server.running(), f"bascule exited:\n{server.stderr}"
        time.sleep(0.02)
    return pids


def wait_lines(server: BasculeProcess, pattern: str, count: int, timeout: float = TIMEOUT) -> None:
    """Wait (bounded) until ``count`` stderr lines match ``pattern``."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while sum(1 for line in server.lines if regex.search(line)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {pattern!r}:\n{server.stderr}"
        time.sleep(0.02)


def children(pid: int) -> set[int]:
    """PIDs of the live (not zombie) processes whose parent is ``pid``, from /proc."""
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_children(pid: int, count: int, timeout: float = TIMEOUT) -> set[int]:
    deadline = time.monotonic() + timeout
    while len(kids := children(pid)) != count:
        assert time.monotonic() < deadline, f"{len(kids)} children, wanted {count}"
        time.sleep(0.02)
    return kids


def get_pid_new_connection(port: int) -> int:
    """One GET on a fresh connection (``Connection: close``); the PID it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise AssertionError(f"bad response: {data!r}")
    return int(body)


class Load:
    """Threads sending GETs in a loop (bounded in count and time) and recording failures."""

    def __init__(self, port: int, new_connection: int, keep_alive: int) -> None:
        self.port = port
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.pids: list[int] = []
        self.failures: list[str] = []
        self.threads = [
            threading.Thread(target=self._loop, args=(self._new_connection,), daemon=True)
            for _ in range(new_connection)
        ] + [
            threading.Thread(target=self._loop, args=(self._keep_alive,), daemon=True)
            for _ in range(keep_alive)
        ]

    def _new_connection(self) -> Iterator[Callable[[], int]]:
        while True:
            yield lambda: get_pid_new_connection(self.port)

    def _keep_alive(self) -> Iterator[Callable[[], int]]:
        with httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=TIMEOUT) as client:

            def one() -> int:
                response = client.get("/")
                assert response.status_code == 200, response
                return int(response.text)

            while True:
                yield one

    def _loop(self, requests: Callable[[], Iterator[Callable[[], int]]]) -> None:
        deadline = time.monotonic() + 30
        for _, request in zip(range(20000), requests(), strict=False):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            try:
                pid = request()
            except Exception as exc:
                with self.lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                with self.lock:
                    self.pids.append(pid)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(TIMEOUT + 5)
        assert not any(t.is_alive() for t in self.threads), "load threads still running"

    def count(self) -> int:
        with self.lock:
            return len(self.pids)

    def wait_requests(self, more: int, timeout: float = TIMEOUT) -> None:
        """Wait (bounded) until ``more`` further requests succeeded."""
        target = self.count() + more
        deadline = time.monotonic() + timeout
        while self.count() < target:
            assert time.monotonic() < deadline, f"load stalled; failures: {self.failures[:5]}"
            time.sleep(0.01)


# workers ----------------------------------------------------------------------------------


def test_several_worker_processes_answer(tmp_path: Path) -> None:
    with start_bascule([*APP, *QUIET, "--workers", "3"], tmp_path) as server:
        workers = set(wait_ready_count(server, 3))
        assert len(workers) == 3
        assert children(server.pid) == workers
        assert server.pid not in workers
        seen: set[int] = set()
        for _ in range(300):
            seen.add(get_pid_new_connection(server.port))
            if len(seen) >= 2:
                break
        assert len(seen) >= 2, seen
        assert seen <= workers
        assert "listening on" in server.stderr
        assert server.stop() == 0


def test_listening_announced_once_workers_ready(tmp_path: Path) -> None:
    with start_bascule([*APP, *QUIET, "--workers", "2"], tmp_path) as server:
        lines = server.lines
        listening = next(i for i, line in enumerate(lines) if "listening on" in line)
        assert sum(1 for line in lines[:listening] if READY.search(line)) == 2
        assert sum(1 for line in lines if "listening on" in line) == 1
        assert f"supervisor pid {server.pid}" in lines[listening]


def test_killed_worker_is_replaced(tmp_path: Path) -> None:
    with start_bascule([*APP, *QUIET, "--workers", "2"], tmp_path) as server:
        first = wait_ready_count(server, 2)
        victim = first[0]
        os.kill(victim, signal.SIGKILL)
        server.wait_for_line(rf"worker {victim} exited \(signal 9 SIGKILL\): replacing")
        replacement = wait_ready_count(server, 3)[2]
        assert replacement not in first
        assert children(server.pid) == {first[1], replacement}
        for _ in range(20):
            assert get_pid_new_connection(server.port) in {first[1], replacement}


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    with start_bascule([*APP, *QUIET, "--workers", "2"], tmp_path) as server:
        workers = set(wait_ready_count(server, 2))
        server.signal(signal.SIGKILL)
        server.wait(TIMEOUT)
        for pid in workers:
            server.wait_for_line(rf"\[{pid}\] .*supervisor gone, stopping")
            server.wait_for_line(rf"bascule stopped \(pid {pid}\)")
        deadline = time.monotonic() + TIMEOUT
        while any(alive(pid) for pid in workers):
            assert time.monotonic() < deadline, "workers still running"
            time.sleep(0.02)


def test_sigterm_stops_workers_gracefully(tmp_path: Path) -> None:
    with start_bascule([*APP, "--workers", "2"], tmp_path) as server:
        workers = set(wait_ready_count(server, 2))
        result: list[int] = []
        fetch = threading.Thread(
            target=lambda: result.append(
                int(httpx.get(f"{server.url}/sleep?seconds=1", timeout=TIMEOUT).text)
            ),
            daemon=True,
        )
        fetch.start()
        server.wait_for_line("e2e_pid: sleeping")
        server.signal(signal.SIGTERM)
        assert server.wait(TIMEOUT) == 0
        fetch.join(TIMEOUT)
        assert result  # the in-flight request finished
        assert result[0] in workers
        for pid in workers:
            assert re.search(rf"worker {pid} stopped \(exit status 0\)", server.stderr)
        assert not children(server.pid)


def test_second_sigint_forces_exit(tmp_path: Path) -> None:
    with start_bascule([*APP, "--workers", "2"], tmp_path) as server:
        wait_ready_count(server, 2)
        errors: list[Exception] = []

        def stuck() -> None:
            try:
                httpx.get(f"{server.url}/sleep?seconds=30", timeout=TIMEOUT)
            except httpx.HTTPError as exc:
                errors.append(exc)

        fetch = threading.Thread(target=stuck, daemon=True)
        fetch.start()
        server.wait_for_line("e2e_pid: sleeping")
        server.signal(signal.SIGINT)
        server.wait_for_line("received SIGINT: stopping")
        started = time.monotonic()
        server.signal(signal.SIGINT)
        assert server.wait(TIMEOUT) == 1
        assert time.monotonic() - started < 5
        assert "second SIGINT: killing the workers" in server.stderr
        fetch.join(TIMEOUT)
        assert errors  # the stuck request was cut off, not answered


def test_boot_failure_exits_with_the_worker_status(tmp_path: Path) -> None:
    result = run_bascule(
        [
            "e2e_lifespan:startup_fails",
            "--app-dir",
            str(APPS_DIR),
            "--lifespan",
            "on",
            "--port",
            "0",
            "--workers",
            "2",
        ],
        tmp_path,
    )
    assert result.returncode == 3, result.stderr
    assert "db down" in result.stderr
    assert re.search(r"worker \d+ failed to start \(exit status 3\): stopping", result.stderr)
    assert len(re.findall(r"worker \d+ started", result.stderr)) == 2  # no respawn loop
    assert "listening on" not in result.stderr


def test_import_error_exits_1_without_respawning(tmp_path: Path) -> None:
    result = run_bascule(["no_such_module:app", "--port", "0", "--workers", "2"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert "could not import module 'no_such_module': module not found" in result.stderr
    assert len(re.findall(r"worker \d+ started", result.stderr)) == 2


# signals: SIGHUP, SIGTTIN, SIGTTOU ----------------------------------------------------------


def test_sighup_replaces_workers_without_a_failed_request(tmp_path: Path) -> None:
    with start_bascule([*APP, *QUIET, "--workers", "2"], tmp_path) as server:
        before = set(wait_ready_count(server, 2))
        with Load(server.port, new_connection=3, keep_alive=3) as load:
            load.wait_requests(500)
            for round_number in (1, 2):
                server.signal(signal.SIGHUP)
                wait_lines(server, "SIGHUP: every worker replaced", round_number)
                load.wait_requests(500)
        after = children(server.pid)
        assert load.failures == []
        assert len(after) == 2
        assert not after & before
        assert set(load.pids) & after
        assert set(load.pids) & before
        assert len(ready_pids(server)) == 6  # 2 at boot + 2 per SIGHUP, one at a time
        assert server.stderr.count("SIGHUP: replacing 2 worker(s) one by one") == 2


def test_sighup_keeps_old_workers_when_new_ones_cannot_start(tmp_path: Path) -> None:
    app = tmp_path / "fragile.py"
    app.write_text("async def app(scope, receive, send):\n    pass\n")
    args = ["fragile:app", "--port", "0", "--workers", "2", "--lifespan", "off"]
    with start_bascule(args, tmp_path) as server:
        old = set(wait_ready_count(server, 2))
        app.write_text("async def app(scope, receive, send)\n")  # a syntax error
        server.signal(signal.SIGHUP)
        server.wait_for_line(r"new worker \d+ failed to start \(exit status 1\)")
        server.wait_for_line("SIGHUP: replacement abandoned")
        assert "SyntaxError" in server.stderr
        assert children(server.pid) == old


def test_ttin_and_ttou_change_the_worker_count(tmp_path: Path) -> None:
    with start_bascule([*APP, *QUIET, "--workers", "2"], tmp_path) as server:
        wait_ready_count(server, 2)
        server.signal(signal.SIGTTIN)
        server.wait_for_line("SIGTTIN: 3 workers")
        wait_ready_count(server, 3)
        assert len(wait_children(server.pid, 3)) == 3
        for remaining in (2, 1):
            server.signal(signal.SIGTTOU)
            server.wait_for_line(rf"SIGTTOU: {remaining} worker")
            server.wait_for_line(rf"stopping worker \d+ \({remaining} wanted\)")
            kids = wait_children(server.pid, remaining)
        server.signal(signal.SIGTTOU)
        server.wait_for_line("SIGTTOU: keeping the last worker")
        server.signal(signal.SIGTTIN)  # a signal handled after the ignored TTOU
        server.wait_for_line("SIGTTIN: 2 workers")
        wait_ready_count(server, 4)
        assert len(wait_children(server.pid, 2)) == 2
        assert kids < children(server.pid)  # the last worker was kept
        assert get_pid_new_connection(server.port) in children(server.pid)


def test_workers_1_with_max_requests_uses_a_supervisor(tmp_path: Path) -> None:
    args = [*APP, *QUIET, "--workers", "1", "--max-requests", "5"]
    with start_bascule(args, tmp_path) as server:
        first = wait_ready_count(server, 1)[0]
        pids = [get_pid_new_connection(server.port) for _ in range(5)]
        assert pids == [first] * 5
        server.wait_for_line(rf"worker {first} reached --max-requests: replacing it")
        wait_ready_count(server, 2)
        server.wait_for_line(rf"worker {first} stopped")
        assert get_pid_new_connection(server.port) != first


def test_max_requests_recycles_workers_under_load(tmp_path: Path) -> None:
    args = [*APP, *QUIET, "--workers", "2", "--max-requests", "100", "--max-requests-jitter", "20"]
    with start_bascule(args, tmp_path) as server:
        first = set(wait_ready_count(server, 2))
        with Load(server.port, new_connection=2, keep_alive=3) as load:
            wait_lines(server, r"worker \d+ stopped \(exit status 0\)", 4, timeout=20)
        assert load.failures == []
        served_by = set(load.pids)
        assert len(served_by) >= 4
        assert served_by & first
        assert re.search(r"served 1[0-2]\d requests \(--max-requests\)", server.stderr)


# --pid -------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_pid_file_written_and_removed(tmp_path: Path, workers: str) -> None:
    pid_path = tmp_path / "run" / "bascule.pid"
    pid_path.parent.mkdir()
    with start_bascule([*APP, "--workers", workers, "--pid", str(pid_path)], tmp_path) as server:
        assert pid_path.read_text().strip() == str(server.pid)
        assert server.stop() == 0
    assert not pid_path.exists()


def test_pid_file_in_missing_directory_is_an_error(tmp_path: Path) -> None:
    pid_path = tmp_path / "missing" / "bascule.pid"
    result = run_bascule([*APP, "--workers", "2", "--pid", str(pid_path)], tmp_path)
    assert result.returncode == 2
    assert f"--pid: cannot write {pid_path}" in result.stderr


def test_a_reaped_workers_pipe_number_reused_by_a_new_worker_is_not_closed() -> None:
    """Review find: the status pipe of a worker that exited was closed by number when it
    was reaped, after a new worker's pipe had reused the number: the new one went untracked."""
    import selectors

    from bascule.config import Config
    from bascule.supervisor import Supervisor, Worker

    sup = Supervisor(Config(app="e2e_pid:app", workers=2).validate())
    try:
        now = time.monotonic()
        read_a, write_a = os.pipe()
        old = Worker(1111, read_a, 0, now, ready=True, retiring=True)
        sup.workers[old.pid] = old
        sup.by_fd[read_a] = old
        sup.selector.register(read_a, selectors.EVENT_READ)
        os.close(write_a)
        sup._readable(read_a)  # EOF: the old worker's pipe is closed
        read_b, write_b = os.pipe()  # the next pipe gets the lowest free number
        assert read_b == read_a
        new = Worker(2222, read_b, 1, now)
        sup.workers[new.pid] = new
        sup.by_fd[read_b] = new
        sup.selector.register(read_b, selectors.EVENT_READ)
        sup.workers.pop(old.pid)
        sup._exited(old, 0, time.monotonic())  # the old worker is reaped
        assert sup.by_fd.get(read_b) is new
        os.fstat(read_b)  # still open
        os.write(write_b, b"R")
        assert os.read(read_b, 1) == b"R"
        os.close(write_b)
    finally:
        sup._cleanup()
