"""``--reload``: the worker restarts on a real file change; a syntax error does not kill it.

The app is written into the test's own directory (tmp_path), which is the
working directory and the default watched directory.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from bascule.reload import ReloadFilter

from .process import BasculeProcess, start_bascule

TIMEOUT = 10.0
READY = re.compile(r"worker (\d+) ready")

APP_SOURCE = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": b"{version}"}})
"""
ARGS = ["reloadable:app", "--reload", "--port", "0", "--lifespan", "off", "--no-access-log"]


def write_app(directory: Path, version: str) -> None:
    # Same length for every version: a stale .pyc (same mtime second, same
    # size) would be used if the worker wrote bytecode; it must not.
    (directory / "reloadable.py").write_text(APP_SOURCE.format(version=version))


def wait_ready_count(server: BasculeProcess, count: int, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for line in server.lines if READY.search(line)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} ready workers:\n{server.stderr}"
        assert server.running(), f"bascule exited:\n{server.stderr}"
        time.sleep(0.02)


def body(server: BasculeProcess) -> str:
    return httpx.get(server.url, timeout=TIMEOUT).text


def test_worker_restarts_on_file_change_and_socket_stays_bound(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    with start_bascule(ARGS, tmp_path) as server:
        assert body(server) == "v1"
        url = server.url
        write_app(tmp_path, "v2")
        server.wait_for_line(r"changed: reloadable\.py: restarting the worker")
        wait_ready_count(server, 2)
        assert body(server) == "v2"
        assert server.url == url
        assert server.stderr.count("listening on") == 1
        assert server.stop() == 0


def test_syntax_error_keeps_the_reloader_alive(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    with start_bascule(ARGS, tmp_path) as server:
        assert body(server) == "v1"
        (tmp_path / "reloadable.py").write_text("async def app(scope, receive, send)\n")
        server.wait_for_line(r"worker \d+ failed to start \(exit status 1\): waiting for a file")
        assert "SyntaxError" in server.stderr
        assert server.running()
        write_app(tmp_path, "v3")
        wait_ready_count(server, 2)
        assert body(server) == "v3"


def test_only_included_files_trigger_a_restart(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    (tmp_path / ".hidden").mkdir()
    args = [*ARGS, "--reload-include", "*.py", "--reload-include", "*.cfg"]
    with start_bascule(args, tmp_path) as server:
        (tmp_path / "notes.txt").write_text("not watched")
        (tmp_path / ".hidden" / "secret.py").write_text("x = 1\n")
        (tmp_path / "settings.cfg").write_text("watched")
        server.wait_for_line(r"changed: settings\.cfg: restarting the worker")
        wait_ready_count(server, 2)
        assert "notes.txt" not in server.stderr
        assert "secret.py" not in server.stderr
        assert body(server) == "v1"


def test_sighup_restarts_the_reloaded_worker(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    with start_bascule(ARGS, tmp_path) as server:
        server.signal(signal.SIGHUP)
        server.wait_for_line("SIGHUP: restarting the worker")
        wait_ready_count(server, 2)
        assert body(server) == "v1"


def test_missing_reload_dir_is_an_error(tmp_path: Path) -> None:
    write_app(tmp_path, "v1")
    with start_bascule([*ARGS, "--reload-dir", "nope"], tmp_path, ready=False) as server:
        assert server.wait(TIMEOUT) == 2
        assert f"--reload-dir: {tmp_path / 'nope'} is not a directory" in server.stderr


# the filter itself (a pure function) -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "include", "exclude", "expected"),
    [
        ("/src/app.py", (), (), True),
        ("/src/pkg/mod.py", (), (), True),
        ("/src/notes.txt", (), (), False),
        ("/src/app.pyc", ("*.py*",), (), False),  # *.py[cod] excluded by default
        ("/src/.git/hooks/x.py", (), (), False),  # hidden directory
        ("/src/.app.py", (), (), False),
        ("/src/app.py~", (), (), False),
        ("/src/templates/a.html", ("*.html",), (), True),
        ("/src/templates/a.html", ("templates/*.html",), (), True),
        ("/src/other/a.html", ("templates/*.html",), (), False),
        ("/src/build/gen.py", (), ("build",), False),
        ("/src/build/gen.py", (), ("build/*",), False),
        ("/src/.venv/x.py", (), ("build",), True),  # an explicit exclude replaces the defaults
    ],
)
def test_reload_filter(
    path: str, include: tuple[str, ...], exclude: tuple[str, ...], expected: bool
) -> None:
    assert ReloadFilter(["/src"], include, exclude)(None, path) is expected
