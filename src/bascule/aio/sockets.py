"""Create the listening sockets for --bind / --host / --port."""

import contextlib
import os
import socket
import stat

from bascule.config import Config, parse_bind, split_host_port
from bascule.errors import ConfigError


def _remove_stale_unix(path: str) -> None:
    """Remove a socket file nobody listens on any more (a previous run's)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"--bind: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        os.unlink(path)
    else:
        raise ConfigError(f"--bind: another server is listening on {path}")
    finally:
        probe.close()


def bind_socket(address: str, backlog: int) -> socket.socket:
    """A bound, listening, non-blocking socket for one --bind value."""
    kind, target = parse_bind(address)
    if kind == "fd":
        assert isinstance(target, int)
        try:
            sock = socket.socket(fileno=target)
        except OSError as exc:
            raise ConfigError(f"--bind: fd://{target} is not a usable socket: {exc}") from None
    elif kind == "unix":
        assert isinstance(target, str)
        _remove_stale_unix(target)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(target)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"--bind: cannot bind unix:{target}: {exc.strerror}") from None
    else:
        host, port = split_host_port(str(target))
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"--bind: cannot bind {address}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def open_listeners(config: Config) -> list[socket.socket]:
    """Every listening socket the options ask for; all closed again if one fails."""
    sockets: list[socket.socket] = []
    try:
        for address in config.binds():
            sockets.append(bind_socket(address, config.backlog))
    except Exception:
        for path in unix_paths(sockets):
            with contextlib.suppress(OSError):
                os.unlink(path)
        for sock in sockets:
            sock.close()
        raise
    return sockets


def unix_paths(sockets: list[socket.socket]) -> list[str]:
    """The filesystem paths of the unix sockets among ``sockets`` (removed at exit)."""
    return [
        sock.getsockname()
        for sock in sockets
        if sock.family == socket.AF_UNIX and isinstance(sock.getsockname(), str)
    ]


def describe(sock: socket.socket, tls: bool = False) -> str:
    """``http(s)://host:port`` or ``unix:path`` for the startup log line."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"
