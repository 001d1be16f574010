"""Listeners of the real ``bascule`` process: unix sockets and their mode, inherited fds,
systemd socket activation, SO_REUSEPORT, IPv6, several binds at once, and bind errors."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from .process import APPS_DIR, bascule_command, child_env, http_port, run_bascule, start_bascule

APP = ["tests.e2e.apps.e2e_sockets_app:app"]
ROOT = APPS_DIR.parent.parent.parent
LAUNCHER = APPS_DIR / "systemd_launcher.py"
HTTP_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback (::1)")


def get_json(url: str, uds: str | None = None, **client: Any) -> dict[str, Any]:
    """GET ``url`` on a fresh connection (over the unix socket ``uds`` if given); the JSON."""
    transport = httpx.HTTPTransport(uds=uds) if uds else None
    with httpx.Client(timeout=HTTP_TIMEOUT, transport=transport, **client) as http:
        response = http.get(url)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def short_socket_path(tmp_path: Path, name: str) -> str:
    """A unix socket path under the 108-byte limit (pytest's tmp paths can be long)."""
    path = tmp_path / name
    return (
        str(path) if len(str(path)) < 100 else str(Path("/tmp") / f"bascule-{os.getpid()}-{name}")
    )


def listening_socket(
    family: socket.AddressFamily = socket.AF_INET, path: str = ""
) -> socket.socket:
    """A listening socket bound by the test (127.0.0.1:0 or ``path``), inheritable."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind(path if family == socket.AF_UNIX else ("127.0.0.1", 0))
    sock.listen(16)
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def spawned(
    argv: Sequence[str], log: Path, pass_fds: Sequence[int]
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` with ``pass_fds``, stderr to ``log``; always stopped by PID (TERM, then KILL)."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            pass_fds=tuple(pass_fds),
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)


def wait_log(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> str:
    """The log's content once it contains ``text`` (bounded; fails if the process exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not logged (status {proc.poll()}); log:\n{log.read_text()}")


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit status 2, one ``bascule: error:`` line naming the bind, no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("bascule: error:")]
    assert len(errors) == 1, result.stderr
    for needle in ("--bind:", *needles):
        assert needle in errors[0], errors[0]


# several binds, IPv6, TLS ------------------------------------------------------------------


@needs_ipv6
def test_ipv4_ipv6_and_unix_binds_all_answer(tmp_path: Path) -> None:
    path = short_socket_path(tmp_path, "multi.sock")
    args = [*APP, "--bind", "127.0.0.1:0", "--bind", "[::1]:0", "--bind", f"unix:{path}"]
    with start_bascule(args, ROOT, listeners=3) as server:
        v4, v6, unix = server.addresses
        assert v4.startswith("http://127.0.0.1:")
        assert v6.startswith("http://[::1]:")
        assert unix == f"unix:{path}"
        assert get_json(f"{v4}/")["server"] == ["127.0.0.1", http_port(v4)]
        assert get_json(f"{v6}/")["server"] == ["::1", http_port(v6)]
        over_unix = get_json("http://localhost/", uds=path)
        assert over_unix["pid"] == server.pid
        assert over_unix["scheme"] == "http"
    assert not os.path.exists(path), "the socket file is removed at exit"


@contextlib.contextmanager
def tls_and_unix(tmp_path: Path) -> Iterator[tuple[str, str, ssl.SSLContext]]:
    """bascule with --certfile on 127.0.0.1:0 and a unix socket: (https URL, path, client context)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    path = short_socket_path(tmp_path, "tls-mix.sock")
    args = [*APP, "--bind", "127.0.0.1:0", "--bind", f"unix:{path}"]
    args += ["--certfile", str(certfile), "--keyfile", str(keyfile)]
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with start_bascule(args, ROOT, listeners=2) as server:
        https, unix = server.addresses
        assert https.startswith("https://127.0.0.1:")
        assert unix == f"unix:{path}"
        yield https, path, context


def test_tls_applies_to_tcp_listeners_not_unix(tmp_path: Path) -> None:
    with tls_and_unix(tmp_path) as (https, path, context):
        assert get_json(f"{https}/", verify=context)["scheme"] == "https"
        # The unix socket speaks plain HTTP (a local proxy terminates TLS) ...
        assert get_json("http://localhost/", uds=path)["pid"] > 0
        # ... and the TCP port speaks TLS only.
        with httpx.Client(timeout=HTTP_TIMEOUT) as plain, pytest.raises(httpx.HTTPError):
            plain.get(https.replace("https://", "http://") + "/")


def test_scheme_of_plain_unix_listener_next_to_tls_is_http(tmp_path: Path) -> None:
    with tls_and_unix(tmp_path) as (_https, path, _context):
        assert get_json("http://localhost/", uds=path)["scheme"] == "http"


# unix sockets -------------------------------------------------------------------------------


def test_uds_permissions_set_the_socket_mode(tmp_path: Path) -> None:
    path = short_socket_path(tmp_path, "mode.sock")
    args = [*APP, "--bind", f"unix:{path}", "--uds-permissions", "640"]
    with start_bascule(args, ROOT) as server:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o640
        assert get_json("http://localhost/", uds=path)["pid"] == server.pid


def test_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = short_socket_path(tmp_path, "stale.sock")
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(path)  # bound, never listening, then closed: a crashed server's file
    leftover.close()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    with start_bascule([*APP, "--bind", f"unix:{path}"], ROOT) as server:
        assert any("removed stale unix socket file" in line for line in server.lines)
        assert get_json("http://localhost/", uds=path)["pid"] == server.pid


def test_live_socket_file_is_refused(tmp_path: Path) -> None:
    path = short_socket_path(tmp_path, "live.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(path)
        other.listen(1)
        result = run_bascule([*APP, "--bind", f"unix:{path}"], ROOT)
        assert_one_line_error(result, f"unix:{path}", "another server is listening")
        assert os.path.exists(path), "the other server's file is left alone"
    os.unlink(path)


def test_path_that_is_not_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "regular-file"
    path.write_text("keep me")
    result = run_bascule([*APP, "--bind", f"unix:{path}"], ROOT)
    assert_one_line_error(result, f"unix:{path}", "not a socket")
    assert path.read_text() == "keep me"


# inherited fds ------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_UNIX], ids=["tcp", "unix"])
def test_bind_fd_serves_an_inherited_socket(tmp_path: Path, family: socket.AddressFamily) -> None:
    path = short_socket_path(tmp_path, "fd.sock")
    sock = listening_socket(family, path)
    log = tmp_path / "stderr.log"
    try:
        argv = bascule_command([*APP, "--bind", f"fd://{sock.fileno()}"])
        with spawned(argv, log, [sock.fileno()]) as proc:
            # The socket already listens: the request waits in its backlog until bascule runs.
            if family == socket.AF_UNIX:
                body = get_json("http://localhost/", uds=path)
            else:
                body = get_json(f"http://127.0.0.1:{sock.getsockname()[1]}/")
            assert body["pid"] == proc.pid
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(STOP_TIMEOUT) == 0
        if family == socket.AF_UNIX:
            assert os.path.exists(path), "an inherited socket's file belongs to its owner"
    finally:
        sock.close()


CLOSED_FD = 987


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("udp", "SOCK_DGRAM socket, not a stream"),
        ("unlistened", "not listening"),
        ("file", "not a usable socket"),
        ("closed", "Bad file descriptor"),
    ],
)
def test_bad_fd_is_one_line_error(tmp_path: Path, kind: str, message: str) -> None:
    holder: Any
    if kind == "udp":
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", 0))
    elif kind == "unlistened":
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", 0))
    else:
        holder = (tmp_path / "f").open("w")
    # A "closed" descriptor must be closed in the child, whose own files (the event loop's
    # self-pipe, the interpreter's) take the low numbers: use one far above them.
    fd = CLOSED_FD if kind == "closed" else holder.fileno()
    pass_fds = [] if kind == "closed" else [fd]
    try:
        result = subprocess.run(
            bascule_command([*APP, "--bind", f"fd://{fd}"]),
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=15,
            pass_fds=pass_fds,
            check=False,
        )
    finally:
        holder.close()
    assert_one_line_error(result, f"fd://{fd}", message)


# systemd socket activation --------------------------------------------------------------------


def test_systemd_socket_activation(tmp_path: Path) -> None:
    path = short_socket_path(tmp_path, "systemd.sock")
    tcp = listening_socket()
    unix = listening_socket(socket.AF_UNIX, path)
    log = tmp_path / "stderr.log"
    try:
        # --host/--port are replaced by the activated sockets (192.0.2.1 is not ours to bind).
        specs = [f"{tcp.fileno()}=web", f"{unix.fileno()}=local"]
        argv = [sys.executable, str(LAUNCHER), *specs, "--", *APP, "--host", "192.0.2.1"]
        with spawned(argv, log, [tcp.fileno(), unix.fileno()]) as proc:
            body = get_json(f"http://127.0.0.1:{tcp.getsockname()[1]}/")
            assert body["pid"] == proc.pid  # execv kept the launcher's pid
            assert body["listen_fds"] is None, "LISTEN_FDS is removed once taken"
            assert get_json("http://localhost/", uds=path)["pid"] == proc.pid
            content = wait_log(log, "listening on unix:", proc)
            assert "fd 3 (web) from systemd" in content
            assert "fd 4 (local) from systemd" in content
            assert content.count("listening on") == 2
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(STOP_TIMEOUT) == 0
        assert os.path.exists(path), "systemd's socket file is left for systemd"
    finally:
        tcp.close()
        unix.close()


def test_systemd_sockets_and_explicit_bind_are_both_served(tmp_path: Path) -> None:
    path = short_socket_path(tmp_path, "extra.sock")
    tcp = listening_socket()
    log = tmp_path / "stderr.log"
    try:
        argv = [sys.executable, str(LAUNCHER), str(tcp.fileno()), "--"]
        argv += [*APP, "--bind", f"unix:{path}"]
        with spawned(argv, log, [tcp.fileno()]) as proc:
            assert get_json(f"http://127.0.0.1:{tcp.getsockname()[1]}/")["pid"] == proc.pid
            wait_log(log, f"listening on unix:{path}", proc)
            assert get_json("http://localhost/", uds=path)["pid"] == proc.pid
    finally:
        tcp.close()


def test_listen_pid_of_another_process_is_ignored(tmp_path: Path) -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1"}  # meant for some other process
    with start_bascule([*APP, "--port", "0"], ROOT, env=env) as server:
        body = get_json(f"{server.url}/")
        assert body["listen_fds"] == "1", "variables not meant for us are left alone"
        assert not any("from systemd" in line for line in server.lines)


# SO_REUSEPORT ----------------------------------------------------------------------------------


def test_reuse_port_lets_two_processes_share_a_port() -> None:
    args = [*APP, "--reuse-port"]
    with start_bascule([*args, "--bind", "127.0.0.1:0"], ROOT) as first:
        port = first.port
        with start_bascule([*args, "--bind", f"127.0.0.1:{port}"], ROOT) as second:
            assert second.port == port
            pids = set()
            for _ in range(200):  # the kernel spreads new connections by a hash of the 4-tuple
                pids.add(get_json(f"http://127.0.0.1:{port}/")["pid"])
                if len(pids) == 2:
                    break
            assert pids == {first.pid, second.pid}


def test_port_in_use_without_reuse_port_is_one_line_error() -> None:
    with start_bascule([*APP, "--bind", "127.0.0.1:0"], ROOT) as first:
        address = f"127.0.0.1:{first.port}"
        result = run_bascule([*APP, "--bind", address], ROOT)
        assert_one_line_error(result, f"cannot bind {address}", "Address already in use")
        result = run_bascule([*APP, "--bind", address, "--reuse-port"], ROOT)
        assert_one_line_error(result, f"cannot bind {address}", "Address already in use")


# permission denied -------------------------------------------------------------------------------


def _unprivileged(args: list[str]) -> list[str]:
    """``args`` run without root's capabilities (setpriv) when the tests run as root."""
    if os.geteuid() != 0:
        return args
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions are not enforced")
    return [setpriv, "--inh-caps=-all", "--bounding-set=-all", *args]


def test_permission_denied_is_one_line_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    checks = [(f"unix:{locked / 's.sock'}", "Permission denied")]
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) > 81:
            checks.append(("127.0.0.1:81", "CAP_NET_BIND_SERVICE"))
    try:
        for bind, message in checks:
            result = subprocess.run(
                _unprivileged(bascule_command([*APP, "--bind", bind])),
                cwd=ROOT,
                env=child_env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=15,
                check=False,
            )
            assert_one_line_error(result, f"cannot bind {bind}", "Permission denied", message)
    finally:
        locked.chmod(0o700)
