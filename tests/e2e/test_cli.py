"""End-to-end tests of the ``bascule`` command: options, app loading, binding."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bascule import __version__
from bascule._build import build_name
from bascule.config import Config, flag, option_fields

from .process import APPS_DIR, READY_TIMEOUT, child_env, run_bascule, start_bascule

HTTP_TIMEOUT = 10.0
APP = ["--app-dir", str(APPS_DIR)]
PORT0 = ["--port", "0"]


def get(url: str, **kwargs: typing.Any) -> httpx.Response:
    """One request on a fresh connection, bounded."""
    return httpx.get(url, timeout=HTTP_TIMEOUT, **kwargs)


def raw_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes (bounded)."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


# --version / --help ------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        pytest.param([sys.executable, "-m", "bascule"], id="python-m"),
        pytest.param([str(Path(sys.executable).parent / "bascule")], id="console-script"),
    ],
)
def test_version_prints_name_and_version(command: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [*command, "--version"],
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=READY_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"bascule {__version__} ({build_name()})\n"
    assert result.stderr == ""


def test_help_mentions_every_option(tmp_path: Path) -> None:
    result = run_bascule(["--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert text.startswith("usage: bascule")
    hints = typing.get_type_hints(Config)
    fields = [f for f in option_fields() if f.name != "app"]
    assert len(fields) > 10
    missing = [f"--{flag(f.name)}" for f in fields if f"--{flag(f.name)}" not in text]
    assert missing == []
    # booleans come as --x / --no-x pairs
    bools = [f for f in fields if hints[f.name] is bool]
    assert bools
    missing_no = [f"--no-{flag(f.name)}" for f in bools if f"--no-{flag(f.name)}" not in text]
    assert missing_no == []
    assert "APP" in text
    assert "--version" in text


# bad option values: status 2, one line naming the option ----------------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--port", "70000"], "--port"),
        (["--port", "abc"], "--port"),
        (["--limit-request-body", "12q"], "--limit-request-body"),
        (["--timeout-keep-alive", "0"], "--timeout-keep-alive"),
        (["--bind", "nonsense"], "--bind"),
        (["--header", "novalue"], "--header"),
        (["--interface", "wsgi3"], "--interface"),
        (["--root-path", "x/"], "--root-path"),
        (["--forwarded-allow-ips", "127.0.0.1,nonsense"], "--forwarded-allow-ips"),
        (["--uds-permissions", "9z"], "--uds-permissions"),
        (["--workers", "-1"], "--workers"),
        (["--max-requests-jitter", "-5"], "--max-requests-jitter"),
        (["--metrics-bind", "nowhere"], "--metrics-bind"),
        (["--interface", "wsgi2"], "--interface"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_bad_option_value_exits_2_with_one_line(
    args: list[str], option: str, tmp_path: Path
) -> None:
    result = run_bascule(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bascule: error:")
    assert option in lines[0]
    assert "listening on" not in result.stderr


# apps that cannot be loaded: status 1, one line, no traceback --------------------------------

BROKEN_MODULES = {
    "e2e_broken.py": 'raise RuntimeError("cannot reach the config server")\n',
    "e2e_syntax.py": "def app(:\n",
}


@pytest.mark.parametrize(
    ("target", "extra", "expected"),
    [
        pytest.param(
            "e2e_no_such_module:app", [], ["e2e_no_such_module", "not found"], id="module"
        ),
        pytest.param(
            "e2e_app:no_such_attribute", [], ["no_such_attribute", "not found"], id="attribute"
        ),
        pytest.param(
            "e2e_app:not_callable", [], ["not_callable", "not callable"], id="not-callable"
        ),
        pytest.param(
            "e2e_broken:app",
            [],
            ["e2e_broken", "RuntimeError", "cannot reach the config server"],
            id="raises-on-import",
        ),
        pytest.param("e2e_syntax:app", [], ["e2e_syntax", "SyntaxError"], id="syntax-error"),
        pytest.param(
            "e2e_app:failing_factory",
            ["--factory"],
            ["failing_factory", "RuntimeError", "no settings for the factory"],
            id="factory-raises",
        ),
    ],
)
def test_unloadable_app_exits_1_with_one_line(
    target: str, extra: list[str], expected: list[str], tmp_path: Path
) -> None:
    app_dir = tmp_path / "apps"
    app_dir.mkdir()
    for name, source in BROKEN_MODULES.items():
        (app_dir / name).write_text(source, encoding="utf-8")
    # --app-dir has the broken modules; the real test apps come through PYTHONPATH
    args = [target, "--app-dir", str(app_dir), *PORT0, *extra]
    result = run_bascule(args, tmp_path, env={"PYTHONPATH": str(APPS_DIR)})
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bascule: error:")
    for word in expected:
        assert word in lines[0]
    assert "Traceback" not in result.stderr
    assert "listening on" not in result.stderr


def test_app_string_without_attribute_exits_1(tmp_path: Path) -> None:
    result = run_bascule(["e2e_app", *APP, *PORT0], tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "module:attribute" in lines[0]


# serving with options ------------------------------------------------------------------------


def test_factory_is_called_to_get_the_app(tmp_path: Path) -> None:
    with start_bascule(["e2e_app:create_app", "--factory", *APP, *PORT0], tmp_path) as server:
        response = get(server.url + "/")
        assert response.status_code == 200
        assert response.text == "made by factory\n"
        assert server.stop() == 0


def test_limit_request_body_accepts_size_suffix(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, *PORT0, "--limit-request-body", "1k"]
    with start_bascule(args, tmp_path) as server:
        url = server.url + "/body"
        small = httpx.post(url, content=b"a" * 500, timeout=HTTP_TIMEOUT)
        assert small.status_code == 200
        assert small.json() == {"length": 500}
        exact = httpx.post(url, content=b"a" * 1024, timeout=HTTP_TIMEOUT)
        assert exact.status_code == 200  # binary units: 1k is 1024 bytes
        assert exact.json() == {"length": 1024}
        big = httpx.post(url, content=b"a" * 2000, timeout=HTTP_TIMEOUT)
        assert big.status_code == 413
        assert big.headers.get("connection") == "close"
        just_over = httpx.post(url, content=b"a" * 1025, timeout=HTTP_TIMEOUT)
        assert just_over.status_code == 413
        # the server is still fine afterwards
        assert get(server.url + "/").status_code == 200


def test_extra_header_on_every_response(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, *PORT0, "--header", "X-Frame-Options:DENY"]
    args += ["--header", "X-Team: e2e"]
    with start_bascule(args, tmp_path) as server:
        for path in ("/", "/scope"):
            response = get(server.url + path)
            assert response.status_code == 200
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["x-team"] == "e2e"
            assert response.headers["server"] == "bascule"
            assert "date" in response.headers
        # the server's own error responses carry it too
        head = raw_exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        assert b"\r\nx-frame-options: DENY\r\n" in head


def test_no_server_and_no_date_headers(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, *PORT0, "--no-server-header", "--no-date-header"]
    with start_bascule(args, tmp_path) as server:
        response = get(server.url + "/")
        assert response.status_code == 200
        assert "server" not in response.headers
        assert "date" not in response.headers
        assert response.text == "ok\n"


def test_root_path_shows_in_scope(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, *PORT0, "--root-path", "/api"]
    with start_bascule(args, tmp_path) as server:
        response = get(server.url + "/scope")
        assert response.status_code == 200
        data = response.json()
        assert data["root_path"] == "/api"
        assert data["path"] == "/api/scope"
        assert data["raw_path"] == "/api/scope"


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a short path (unix socket paths are limited to ~107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="bsc-", dir="/tmp") as name:
        yield Path(name)


def test_bind_unix_socket_and_cleanup(tmp_path: Path, short_tmp: Path) -> None:
    sock_path = short_tmp / "bascule.sock"
    args = ["e2e_app:app", *APP, "--bind", f"unix:{sock_path}"]
    with start_bascule(args, tmp_path) as server:
        assert server.addresses == [f"unix:{sock_path}"]
        assert sock_path.is_socket()
        transport = httpx.HTTPTransport(uds=str(sock_path))
        with httpx.Client(transport=transport, timeout=HTTP_TIMEOUT) as client:
            response = client.get("http://localhost/scope")
            assert response.status_code == 200
            assert response.json()["path"] == "/scope"
            assert client.get("http://localhost/").text == "ok\n"
        assert server.stop() == 0
    assert not sock_path.exists()


def test_bind_unix_replaces_stale_socket_file(tmp_path: Path, short_tmp: Path) -> None:
    sock_path = short_tmp / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(sock_path))  # bound, never listened: what a killed server leaves
    assert sock_path.is_socket()
    with start_bascule(["e2e_app:app", *APP, "--bind", f"unix:{sock_path}"], tmp_path) as server:
        transport = httpx.HTTPTransport(uds=str(sock_path))
        with httpx.Client(transport=transport, timeout=HTTP_TIMEOUT) as client:
            assert client.get("http://localhost/").text == "ok\n"
        assert server.stop() == 0
    assert not sock_path.exists()


def test_failed_startup_removes_unix_socket_file(tmp_path: Path, short_tmp: Path) -> None:
    """A later --bind that cannot be bound must not leave the unix socket file behind."""
    sock_path = short_tmp / "bascule.sock"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = ["e2e_app:app", *APP, "--bind", f"unix:{sock_path}"]
        args += ["--bind", f"127.0.0.1:{port}"]
        result = run_bascule(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert f"cannot bind 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not sock_path.exists(), "unix socket file left behind after a failed startup"


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_bind_ipv4_and_ipv6(tmp_path: Path) -> None:
    if not _ipv6_available():
        pytest.skip("IPv6 loopback (::1) is not available")
    args = ["e2e_app:app", *APP, "--bind", "127.0.0.1:0", "--bind", "[::1]:0"]
    with start_bascule(args, tmp_path, listeners=2) as server:
        v4, v6 = server.addresses
        assert v4.startswith("http://127.0.0.1:")
        assert v6.startswith("http://[::1]:")
        for url in (v4, v6):
            response = get(url + "/")
            assert response.status_code == 200
            assert response.text == "ok\n"
        assert server.stop() == 0


def test_bind_two_ipv4_listeners(tmp_path: Path) -> None:
    args = ["e2e_app:app", *APP, "--bind", "127.0.0.1:0", "--bind", "127.0.0.1:0"]
    with start_bascule(args, tmp_path, listeners=2) as server:
        first, second = server.http_addresses
        assert first != second
        for url in (first, second):
            assert get(url + "/").text == "ok\n"


@pytest.mark.parametrize(
    "interface",
    [pytest.param(["--interface", "asgi2"], id="explicit"), pytest.param([], id="auto")],
)
def test_asgi2_class_app(interface: list[str], tmp_path: Path) -> None:
    with start_bascule(["e2e_asgi2:App", *APP, *PORT0, *interface], tmp_path) as server:
        response = get(server.url + "/hello")
        assert response.status_code == 200
        assert response.json() == {"interface": "asgi2", "path": "/hello"}
        assert server.stop() == 0


def test_asgi3_app_called_as_asgi2_fails_cleanly(tmp_path: Path) -> None:
    """Forcing --interface asgi2 on an ASGI 3 app: requests get 500, the server survives."""
    args = ["e2e_app:app", *APP, *PORT0, "--interface", "asgi2", "--lifespan", "off"]
    with start_bascule(args, tmp_path) as server:
        assert get(server.url + "/").status_code == 500
        assert get(server.url + "/").status_code == 500
        assert server.running()


def test_python_m_bascule_serves_demo_page(tmp_path: Path) -> None:
    with start_bascule(PORT0, tmp_path) as server:
        assert server.url.startswith("http://127.0.0.1:")
        response = get(server.url + "/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "bascule" in response.text
        assert "<html" in response.text
        echo = httpx.post(server.url + "/echo", content=b"ping", timeout=HTTP_TIMEOUT)
        assert echo.content == b"ping"
        assert server.stop() == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "auto"])
def test_loop_choice_serves(loop: str, tmp_path: Path) -> None:
    with start_bascule(["e2e_app:app", *APP, *PORT0, "--loop", loop], tmp_path) as server:
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            for _ in range(3):  # keep-alive reuse
                response = client.get(server.url + "/scope")
                assert response.status_code == 200
                assert json.loads(response.text)["state"] == {"x": "set at startup"}
        assert server.stop() == 0


def test_access_log_lines_and_no_access_log(tmp_path: Path) -> None:
    with start_bascule(["e2e_app:app", *APP, *PORT0], tmp_path) as server:
        get(server.url + "/scope?a=1")
        line = server.wait_for_line("bascule.access")
        assert '"GET /scope?a=1 HTTP/1.1" 200' in line
    with start_bascule(["e2e_app:app", *APP, *PORT0, "--no-access-log"], tmp_path) as server:
        assert get(server.url + "/").status_code == 200
        assert server.stop() == 0
        assert "bascule.access" not in server.stderr
