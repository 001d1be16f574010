"""Create the listening sockets for --bind / --host / --port, or take inherited ones.

Three sources of listeners, in this order:

1. systemd socket activation: when ``LISTEN_PID`` is this process's id,
   fds ``3 .. 3+LISTEN_FDS-1`` are taken (and the variables removed from the
   environment so that child processes do not take them again);
2. ``--bind`` values: ``HOST:PORT``, ``[IPv6]:PORT``, ``unix:PATH``, ``fd://N``;
3. ``--host``/``--port``, only when neither of the above gave anything.

Every failure is a :class:`ConfigError` whose one-line message names the
bind (the command line turns it into exit status 2).  Sockets that were
inherited (``fd://N``, systemd) are never unlinked or re-``listen()``-ed:
their owner configured them.
"""

import contextlib
import errno
import os
import socket
import stat
import weakref

from bascule.config import Config, parse_bind, split_host_port
from bascule.errors import ConfigError
from bascule.logs import error_log

#: The first fd systemd passes (``SD_LISTEN_FDS_START`` in sd-daemon.h).
SD_LISTEN_FDS_START = 3

#: How long the stale-socket probe waits for a connect on a unix socket file.
_PROBE_TIMEOUT = 1.0

# Sockets this process did not create itself; see inherited().
_INHERITED: "weakref.WeakSet[socket.socket]" = weakref.WeakSet()


def inherited(sock: socket.socket) -> bool:
    """True for sockets taken from ``fd://N`` or systemd (their files are not ours)."""
    return sock in _INHERITED


def _name(value: int) -> str:
    """An enum constant's name (``SOCK_DGRAM``), or the number when it has none."""
    return str(getattr(value, "name", value))


def _reason(exc: OSError) -> str:
    """``strerror`` plus a hint for the common operator mistakes."""
    text = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        text += " (another process listens there)"
    return text


def _remove_stale_unix(path: str) -> None:
    """Remove a socket file nobody listens on any more (a previous run's)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"--bind: unix:{path}: cannot check the path: {_reason(exc)}") from None
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"--bind: unix:{path}: the path exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # nobody accepts: a leftover of a process that died
    except OSError as exc:
        raise ConfigError(
            f"--bind: unix:{path}: cannot tell whether another server uses it: {_reason(exc)}"
        ) from None
    else:
        raise ConfigError(f"--bind: unix:{path}: another server is listening on it")
    finally:
        probe.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(
            f"--bind: unix:{path}: cannot remove the stale socket file: {_reason(exc)}"
        ) from None
    error_log.info("removed stale unix socket file %s", path)


def adopt_fd(fd: int, label: str) -> socket.socket:
    """A listening stream socket made from an inherited fd, set non-blocking.

    ``label`` names the source in error messages (``--bind: fd://3``).
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(f"{label}: not a usable socket: {_reason(exc)}") from None
    problem = None
    if sock.family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
        problem = f"unsupported address family {_name(sock.family)}"
    elif sock.type != socket.SOCK_STREAM:
        problem = f"a {_name(sock.type)} socket, not a stream (SOCK_STREAM) one"
    elif not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        problem = "the socket is not listening (call listen() before passing it)"
    if problem is not None:
        sock.detach()  # the fd stays the owner's
        raise ConfigError(f"{label}: {problem}")
    sock.setblocking(False)
    sock.set_inheritable(False)
    _INHERITED.add(sock)
    return sock


def _bind_unix(path: str, uds_mode: int | None) -> socket.socket:
    _remove_stale_unix(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"--bind: cannot bind unix:{path}: {_reason(exc)}") from None
    if uds_mode is not None:
        # Before listen(): nobody can connect while the mode is still the umask's.
        try:
            os.chmod(path, uds_mode)
        except OSError as exc:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise ConfigError(
                f"--uds-permissions: cannot chmod {oct(uds_mode)} unix:{path}: {_reason(exc)}"
            ) from None
    return sock


def _bind_tcp(address: str, reuse_port: bool) -> socket.socket:
    host, port = split_host_port(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - not on Linux
                raise ConfigError("--reuse-port: SO_REUSEPORT is not available on this system")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # [::]:PORT means IPv6 only; bind 0.0.0.0:PORT as well for IPv4.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        hint = ""
        if exc.errno == errno.EACCES and 0 < port < 1024:
            hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        raise ConfigError(f"--bind: cannot bind {address}: {_reason(exc)}{hint}") from None
    except ConfigError:
        sock.close()
        raise
    return sock


def bind_socket(
    address: str,
    backlog: int,
    *,
    reuse_port: bool = False,
    uds_mode: int | None = None,
) -> socket.socket:
    """A bound, listening, non-blocking socket for one --bind value.

    ``reuse_port`` sets SO_REUSEPORT on TCP sockets; ``uds_mode`` is the
    mode unix socket files get (``--uds-permissions``).  ``fd://N`` takes
    the inherited socket as it is.
    """
    kind, target = parse_bind(address)
    if kind == "fd":
        if not isinstance(target, int):  # pragma: no cover - parse_bind's contract
            raise TypeError(target)
        return adopt_fd(target, f"--bind: {address}")
    if kind == "unix":
        sock = _bind_unix(str(target), uds_mode)
    else:
        sock = _bind_tcp(str(target), reuse_port)
    try:
        sock.listen(backlog)
    except OSError as exc:  # pragma: no cover - listen() on a fresh bound socket
        sock.close()
        raise ConfigError(f"--bind: {address}: cannot listen: {_reason(exc)}") from None
    sock.setblocking(False)
    return sock


def systemd_sockets() -> list[socket.socket]:
    """The sockets systemd passed to this process (socket activation), or none.

    Follows sd_listen_fds(3): the variables count only when ``LISTEN_PID``
    is our pid; they are then removed from the environment, so processes
    we start do not take the same fds.
    """
    pid_text = os.environ.get("LISTEN_PID")
    if pid_text is None or pid_text.strip() != str(os.getpid()):
        return []
    count_text = os.environ.get("LISTEN_FDS", "")
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not count_text.strip().isdigit():
        raise ConfigError(f"LISTEN_FDS: expected a number of fds, got {count_text!r}")
    sockets: list[socket.socket] = []
    try:
        for index in range(int(count_text)):
            fd = SD_LISTEN_FDS_START + index
            name = names[index] if index < len(names) and names[index] else "unnamed"
            sock = adopt_fd(fd, f"systemd socket activation (LISTEN_FDS) fd {fd} ({name})")
            error_log.info("using socket fd %d (%s) from systemd: %s", fd, name, describe(sock))
            sockets.append(sock)
    except ConfigError:
        for sock in sockets:
            sock.detach()
        raise
    return sockets


def open_listeners(config: Config) -> list[socket.socket]:
    """Every listening socket the options (and systemd) ask for; all closed if one fails.

    With systemd socket activation, its sockets replace ``--host``/``--port``;
    explicit ``--bind`` values are served as well.
    """
    sockets: list[socket.socket] = []
    try:
        activated = systemd_sockets()
        sockets.extend(activated)
        addresses = list(config.bind) if activated else config.binds()
        taken = {sock.fileno() for sock in activated}
        for address in addresses:
            kind, target = parse_bind(address)
            if kind == "fd" and target in taken:
                raise ConfigError(
                    f"--bind: {address}: this fd is already taken from systemd socket activation"
                )
            sockets.append(
                bind_socket(
                    address,
                    config.backlog,
                    reuse_port=config.reuse_port,
                    uds_mode=config.uds_mode(),
                )
            )
    except BaseException:
        for path in unix_paths(sockets):
            with contextlib.suppress(OSError):
                os.unlink(path)
        for sock in sockets:
            sock.close()
        raise
    return sockets


def unix_paths(sockets: list[socket.socket]) -> list[str]:
    """Paths of the unix socket files bound by this process (removed at exit).

    Inherited sockets and abstract-namespace ones are left out.
    """
    paths = []
    for sock in sockets:
        if sock.family != socket.AF_UNIX or inherited(sock):
            continue
        name = sock.getsockname()
        if isinstance(name, str) and name:
            paths.append(name)
    return paths


def describe(sock: socket.socket, tls: bool = False) -> str:
    """``http(s)://host:port`` or ``unix:path`` for the startup log line."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(name, bytes):  # Linux abstract namespace: leading NUL
            return "unix:@" + name[1:].decode("utf-8", "backslashreplace")
        return f"unix:{name}"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"
