"""Every option, declared once.

``Config`` is a frozen dataclass; each field's metadata carries its help text
and how the command line spells it, and ``bascule.cli`` builds the argument
parser from it.  ``bascule.run(app, **options)`` takes the same names as
keyword arguments.  ``Config.validate()`` raises :class:`ConfigError` naming
the option.  Layers get slices (``http1_limits()``, ``timeouts()``), never
the whole object.  No I/O here.
"""

import math
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from enum import Enum
from typing import Any

from bascule.asgi.forwarded import TrustedProxies
from bascule.errors import ConfigError
from bascule.proto.limits import (
    DEFAULT_MAX_HEADER_SIZE,
    DEFAULT_WS_MAX_QUEUE,
    DEFAULT_WS_MAX_SIZE,
    Http1Limits,
    Http2Limits,
    WsLimits,
)


class Interface(Enum):
    """How to call the application."""

    AUTO = "auto"
    ASGI3 = "asgi3"
    ASGI2 = "asgi2"
    WSGI = "wsgi"


class LifespanMode(Enum):
    """Whether to run the lifespan protocol."""

    AUTO = "auto"
    ON = "on"
    OFF = "off"


class LoopChoice(Enum):
    """Event loop implementation."""

    AUTO = "auto"
    ASYNCIO = "asyncio"
    UVLOOP = "uvloop"


class CertReqs(Enum):
    """Whether clients must present a TLS certificate."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


class LogFormat(Enum):
    """How log lines are written."""

    TEXT = "text"
    JSON = "json"


class LogLevel(Enum):
    """Level of the ``bascule.error`` logger."""

    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"
    TRACE = "trace"


def _opt(default: Any, help: str, *, metavar: str | None = None, size: bool = False) -> Any:
    meta = {"help": help, "metavar": metavar, "size": size}
    if isinstance(default, list | tuple):
        return field(default=tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Timeouts:
    """The slice of Config the asyncio layer's timers need (seconds)."""

    keep_alive: float
    request_header: float
    request_body: float
    write: float
    graceful_shutdown: float
    ws_ping_interval: float
    ws_ping_timeout: float
    ws_close_timeout: float


@dataclass(frozen=True)
class Config:
    """bascule's options.  Field names are the ``run()`` keywords and, with ``-``
    for ``_``, the command-line flags."""

    app: Any = _opt(
        "bascule.demo:app",
        "the application: 'module:attribute' (default: the built-in demo app)",
        metavar="APP",
    )
    host: str = _opt("127.0.0.1", "address to bind (ignored when --bind is given)")
    port: int = _opt(8000, "TCP port to bind; 0 picks a free one (ignored when --bind is given)")
    bind: tuple[str, ...] = _opt(
        (),
        "where to listen: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N; repeatable",
        metavar="ADDRESS",
    )
    app_dir: str = _opt(
        ".", "directory put first on sys.path before importing the app", metavar="DIR"
    )
    factory: bool = _opt(False, "treat APP as a factory: call it with no arguments to get the app")
    interface: Interface = _opt(
        Interface.AUTO,
        "application interface: ASGI 3, ASGI 2 (double callable) or WSGI (run in a thread pool)",
    )
    wsgi_max_workers: int | None = _opt(
        None,
        "threads running WSGI requests (default: min(32, CPUs + 4)); more requests wait",
        metavar="N",
    )
    lifespan: LifespanMode = _opt(
        LifespanMode.AUTO, "lifespan protocol: auto (use it if the app supports it), on, off"
    )
    root_path: str = _opt(
        "", "path the app is mounted at behind a proxy (scope root_path)", metavar="PATH"
    )
    loop: LoopChoice = _opt(
        LoopChoice.AUTO, "event loop: auto (uvloop when installed), asyncio, uvloop"
    )
    log_level: LogLevel = _opt(LogLevel.INFO, "level of the bascule.error logger")
    gc_freeze: bool = _opt(
        True,
        "once started (app imported, lifespan done), move every object so far to the "
        "garbage collector's permanent generation (gc.freeze): collections stop re-scanning them",
    )
    eager_tasks: bool = _opt(
        True,
        "Python 3.12+: run each request's app at once, in its task, up to its first wait "
        "(an app that never waits finishes without being scheduled); no effect on 3.11",
    )
    access_log: bool = _opt(True, "one line per response on the bascule.access logger")
    access_log_format: str | None = _opt(
        None,
        "access line template with {field} names: client, method, path, query, protocol, "
        "status, bytes, duration_ms, request header by {header_NAME} (see docs/logging.md)",
        metavar="TEMPLATE",
    )
    log_format: LogFormat = _opt(
        LogFormat.TEXT, "log line format: text, or json (one JSON object per line)"
    )
    log_config: str | None = _opt(
        None,
        "logging configuration: dictConfig as .json/.yaml/.toml, or fileConfig .ini",
        metavar="PATH",
    )
    config: str | None = _opt(
        None,
        "TOML file of options (default: [tool.bascule] of ./pyproject.toml when present)",
        metavar="PATH",
    )
    workers: int = _opt(
        1,
        "worker processes; 0 or 1 serve in this process, more start a supervisor",
        metavar="N",
    )
    max_requests: int | None = _opt(
        None, "replace a worker gracefully after it served this many requests", metavar="N"
    )
    max_requests_jitter: int = _opt(
        0, "add a random 0..N to --max-requests per worker (spread the restarts)", metavar="N"
    )
    reload: bool = _opt(False, "development: restart the worker when a watched file changes")
    reload_dir: tuple[str, ...] = _opt(
        (), "directory to watch with --reload (default: current); repeatable", metavar="DIR"
    )
    reload_include: tuple[str, ...] = _opt(
        (), "glob of files whose change reloads (default: *.py); repeatable", metavar="GLOB"
    )
    reload_exclude: tuple[str, ...] = _opt(
        (),
        "glob of files ignored by --reload (default: .*, *.py[cod], *~); repeatable",
        metavar="GLOB",
    )
    pid: str | None = _opt(None, "write the supervisor's process id to this file", metavar="PATH")
    uds_permissions: str | None = _opt(
        None, "octal mode of unix sockets bound with --bind unix:PATH, e.g. 660", metavar="MODE"
    )
    reuse_port: bool = _opt(False, "set SO_REUSEPORT on TCP listeners")
    proxy_headers: bool = _opt(
        False,
        "take client address, scheme and host from X-Forwarded-* / Forwarded sent by "
        "--forwarded-allow-ips peers",
    )
    forwarded_allow_ips: tuple[str, ...] = _opt(
        ("127.0.0.1", "::1"),
        "proxies trusted for --proxy-headers: addresses, CIDRs, 'unix' or '*'; "
        "repeatable or comma-separated",
        metavar="ADDRESSES",
    )
    proxy_protocol: bool = _opt(
        False,
        "every connection starts with a PROXY protocol v1 or v2 header (HAProxy, cloud load "
        "balancers); connections without one are closed",
    )
    metrics_bind: str | None = _opt(
        None, "serve Prometheus metrics on this HOST:PORT (a separate listener)", metavar="ADDRESS"
    )
    timeout_keep_alive: float = _opt(
        5.0, "close a keep-alive connection idle this many seconds", metavar="SECONDS"
    )
    timeout_request_header: float = _opt(
        10.0, "time allowed to receive a whole request head (slowloris guard)", metavar="SECONDS"
    )
    timeout_request_body: float = _opt(
        30.0,
        "longest wait for more request body bytes while a request is in flight (408 or close)",
        metavar="SECONDS",
    )
    timeout_write: float = _opt(
        60.0,
        "close a connection whose client leaves our write buffer full (unread) this long",
        metavar="SECONDS",
    )
    timeout_graceful_shutdown: float = _opt(
        30.0,
        "on SIGTERM/SIGINT, wait this long for in-flight requests, then cancel them",
        metavar="SECONDS",
    )
    limit_concurrency: int | None = _opt(
        None, "answer 503 when this many connections or requests are in flight", metavar="N"
    )
    limit_max_connections: int | None = _opt(
        None,
        "most open client connections per process; past it new connections wait in the "
        "listen backlog (accepting pauses) until some close",
        metavar="N",
    )
    limit_request_body: int | None = _opt(
        None,
        "largest request body in bytes (k/m/g suffixes allowed); 413 past it",
        metavar="BYTES",
        size=True,
    )
    backlog: int = _opt(2048, "listen backlog of each socket", metavar="N")
    max_request_header_size: int = _opt(
        DEFAULT_MAX_HEADER_SIZE,
        "largest request line + header section in bytes; 431 past it",
        metavar="BYTES",
        size=True,
    )
    server_header: bool = _opt(True, "send 'Server: bascule'")
    date_header: bool = _opt(True, "send a Date header")
    header: tuple[str, ...] = _opt(
        (), "extra response header on every response, NAME:VALUE; repeatable", metavar="NAME:VALUE"
    )

    certfile: str | None = _opt(
        None, "TLS certificate (PEM; may hold the chain and the key); enables HTTPS", metavar="PATH"
    )
    keyfile: str | None = _opt(None, "TLS private key (PEM), if not in --certfile", metavar="PATH")
    keyfile_password: str | None = _opt(
        None, "password of an encrypted --keyfile", metavar="PASSWORD"
    )
    ca_certs: str | None = _opt(
        None, "CA certificates (PEM) that client certificates must chain to", metavar="PATH"
    )
    cert_reqs: CertReqs = _opt(
        CertReqs.NONE, "client certificates: none, optional (verified if sent), required"
    )
    ciphers: str = _opt(
        "TLSv1.2:!aNULL:!eNULL:!MD5:!RC4:!3DES",
        "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults)",
        metavar="CIPHERS",
    )
    http2: bool = _opt(
        True, "serve HTTP/2: ALPN h2 over TLS, and prior-knowledge h2c on cleartext ports"
    )
    h2_max_concurrent_streams: int = _opt(
        100, "HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS", metavar="N"
    )
    h2_max_header_list_size: int = _opt(
        DEFAULT_MAX_HEADER_SIZE,
        "HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE, in bytes",
        metavar="BYTES",
        size=True,
    )
    h2_initial_window_size: int = _opt(
        65535,
        "HTTP/2 stream receive window: request body bytes a stream may send ahead of the app",
        metavar="BYTES",
        size=True,
    )
    h2_max_inbound_frame_size: int = _opt(
        16384, "HTTP/2 SETTINGS_MAX_FRAME_SIZE (16384..16777215)", metavar="BYTES", size=True
    )
    ws: bool = _opt(True, "serve WebSocket upgrades (with --no-ws they are answered as plain HTTP)")
    ws_max_size: int = _opt(
        DEFAULT_WS_MAX_SIZE,
        "largest WebSocket message in bytes, after decompression; close 1009 past it",
        metavar="BYTES",
        size=True,
    )
    ws_max_queue: int = _opt(
        DEFAULT_WS_MAX_QUEUE,
        "WebSocket messages queued for the app before the socket stops being read",
        metavar="N",
    )
    ws_ping_interval: float = _opt(
        20.0, "send a WebSocket ping this often, in seconds; 0 turns pings off", metavar="SECONDS"
    )
    ws_ping_timeout: float = _opt(
        20.0,
        "close a WebSocket (1011) whose pong does not come within this time",
        metavar="SECONDS",
    )
    ws_close_timeout: float = _opt(
        5.0,
        "wait this long for the peer's close frame, then drop the connection",
        metavar="SECONDS",
    )
    ws_per_message_deflate: bool = _opt(True, "negotiate permessage-deflate compression (RFC 7692)")

    def __post_init__(self) -> None:
        """Accept the spellings ``run()`` callers use: strings for enums, lists for tuples."""
        for name, kind in _ENUM_FIELDS.items():
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    object.__setattr__(self, name, kind(value))
                except ValueError:
                    choices = ", ".join(m.value for m in kind)
                    raise ConfigError(
                        f"--{flag(name)}: expected one of {choices}, got {value!r}"
                    ) from None
        for name in (
            "bind",
            "header",
            "reload_dir",
            "reload_include",
            "reload_exclude",
            "forwarded_allow_ips",
        ):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    def validate(self) -> "Config":
        """Check every value; raise ConfigError naming the first bad option."""
        self._check_types()
        if isinstance(self.app, str) and not self.app:
            raise ConfigError("APP: must not be empty")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port: must be in 0..65535, got {self.port}")
        for address in self.bind:
            parse_bind(address)
        if self.metrics_bind is not None:
            try:
                split_host_port(self.metrics_bind)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace("--bind:", "--metrics-bind:", 1)) from None
        if self.workers < 0:
            raise ConfigError(f"--workers: must be >= 0, got {self.workers}")
        if self.max_requests_jitter < 0:
            raise ConfigError(
                f"--max-requests-jitter: must be >= 0, got {self.max_requests_jitter}"
            )
        if self.uds_permissions is not None:
            self.uds_mode()
        try:
            TrustedProxies(self.allowed_proxies())
        except ValueError as exc:
            raise ConfigError(f"--forwarded-allow-ips: {exc}") from None
        if not math.isfinite(self.ws_ping_interval) or self.ws_ping_interval < 0:
            raise ConfigError(f"--ws-ping-interval: must be >= 0, got {self.ws_ping_interval}")
        for name in (
            "timeout_keep_alive",
            "timeout_request_header",
            "timeout_request_body",
            "timeout_write",
            "timeout_graceful_shutdown",
            "ws_ping_timeout",
            "ws_close_timeout",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"--{flag(name)}: must be a finite number > 0, got {value}")
        for name in (
            "limit_concurrency",
            "limit_request_body",
            "limit_max_connections",
            "wsgi_max_workers",
            "max_requests",
            "backlog",
            "max_request_header_size",
            "ws_max_size",
            "ws_max_queue",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{flag(name)}: must be >= 1, got {value}")
        if not 16384 <= self.h2_max_inbound_frame_size <= 16777215:
            raise ConfigError(
                "--h2-max-inbound-frame-size: must be in 16384..16777215, "
                f"got {self.h2_max_inbound_frame_size}"
            )
        if not 1 <= self.h2_initial_window_size <= 2**31 - 1:
            raise ConfigError(
                "--h2-initial-window-size: must be in 1..2147483647, "
                f"got {self.h2_initial_window_size}"
            )
        for name in ("h2_max_concurrent_streams", "h2_max_header_list_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{flag(name)}: must be >= 1, got {getattr(self, name)}")
        if self.max_request_header_size < 1024:
            raise ConfigError(
                f"--max-request-header-size: must be >= 1024, got {self.max_request_header_size}"
            )
        for item in self.header:
            parse_header(item)
        for name in ("keyfile", "keyfile_password", "ca_certs"):
            if getattr(self, name) is not None and self.certfile is None:
                raise ConfigError(f"--{flag(name)}: needs --certfile")
        if self.cert_reqs is not CertReqs.NONE and self.ca_certs is None:
            raise ConfigError(f"--cert-reqs {self.cert_reqs.value}: needs --ca-certs")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError(
                f"--root-path: must start with '/' and not end with one, got {self.root_path!r}"
            )
        return self

    def _check_types(self) -> None:
        """Values given to ``run()``/``Config()`` must have the option's type."""
        for f in fields(self):
            if f.name == "app":
                continue
            value = getattr(self, f.name)
            kind, optional = field_type(f.name)
            if value is None and optional:
                continue
            expected: tuple[type, ...] = (int, float) if kind is float else (kind,)
            if typing.get_origin(kind) is tuple:
                expected = (tuple,)
            wrong_bool = isinstance(value, bool) and bool not in expected
            if not isinstance(value, expected) or wrong_bool:
                names = " or ".join(t.__name__ for t in expected)
                raise ConfigError(
                    f"--{flag(f.name)}: expected {names}, got {type(value).__name__} {value!r}"
                )

    def http1_limits(self) -> Http1Limits:
        """The HTTP/1.1 protocol's limits."""
        return Http1Limits(
            max_header_size=self.max_request_header_size,
            max_body_size=self.limit_request_body,
        )

    def timeouts(self) -> Timeouts:
        """The asyncio layer's timeouts."""
        return Timeouts(
            keep_alive=self.timeout_keep_alive,
            request_header=self.timeout_request_header,
            request_body=self.timeout_request_body,
            write=self.timeout_write,
            graceful_shutdown=self.timeout_graceful_shutdown,
            ws_ping_interval=self.ws_ping_interval,
            ws_ping_timeout=self.ws_ping_timeout,
            ws_close_timeout=self.ws_close_timeout,
        )

    def h2_limits(self) -> Http2Limits:
        """The HTTP/2 connection's limits and SETTINGS."""
        return Http2Limits(
            max_concurrent_streams=self.h2_max_concurrent_streams,
            initial_window_size=self.h2_initial_window_size,
            max_inbound_frame_size=self.h2_max_inbound_frame_size,
            max_header_list_size=self.h2_max_header_list_size,
        )

    def ws_limits(self) -> WsLimits:
        """The WebSocket frame layer's limits."""
        return WsLimits(
            max_size=self.ws_max_size,
            max_queue=self.ws_max_queue,
            per_message_deflate=self.ws_per_message_deflate,
        )

    def binds(self) -> list[str]:
        """Addresses to listen on, ``--host``/``--port`` when no ``--bind`` is given."""
        if self.bind:
            return list(self.bind)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [f"{host}:{self.port}"]

    def uds_mode(self) -> int | None:
        """``--uds-permissions`` as a mode number (``"660"`` → 0o660)."""
        if self.uds_permissions is None:
            return None
        text = self.uds_permissions.strip()
        try:
            mode = int(text.removeprefix("0o"), 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ConfigError(
                f"--uds-permissions: expected an octal mode like 660, got {self.uds_permissions!r}"
            )
        return mode

    def allowed_proxies(self) -> list[str]:
        """``--forwarded-allow-ips`` entries, comma-separated values split."""
        return [
            part.strip()
            for item in self.forwarded_allow_ips
            for part in item.split(",")
            if part.strip()
        ]

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        """``--header`` values as (lowercased name, value) pairs."""
        return [parse_header(item) for item in self.header]


_ENUM_FIELDS: dict[str, type[Enum]] = {
    "interface": Interface,
    "lifespan": LifespanMode,
    "loop": LoopChoice,
    "log_level": LogLevel,
    "log_format": LogFormat,
    "cert_reqs": CertReqs,
}


_HINTS: dict[str, Any] = {}


def field_type(name: str) -> tuple[Any, bool]:
    """(base type, optional) of a Config field, from its annotation (``int | None``)."""
    if not _HINTS:
        _HINTS.update(typing.get_type_hints(Config))
    annotation = _HINTS[name]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def flag(name: str) -> str:
    """The command-line spelling of a field name."""
    return name.replace("_", "-")


def option_fields() -> list[Any]:
    """Config's fields, in declaration order."""
    return list(fields(Config))


def field_default(f: Any) -> Any:
    """A field's default value."""
    return f.default if f.default is not MISSING else None


_SIZE = re.compile(r"(?i)^\s*(\d+)\s*(k|kb|kib|m|mb|mib|g|gb|gib)?\s*$")
_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``65536``, ``64k``, ``64KiB``, ``1m``, ``1g`` → bytes (binary units)."""
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"not a size in bytes: {text!r} (use e.g. 65536, 64k, 1m)")
    number, unit = int(m.group(1)), m.group(2)
    return number * _UNITS[unit[0].lower()] if unit else number


_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def parse_header(item: str) -> tuple[bytes, bytes]:
    """``NAME:VALUE`` → (lowercased name, value) as bytes."""
    name, sep, value = item.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _HEADER_NAME.match(name):
        raise ConfigError(f"--header: expected NAME:VALUE with a valid field name, got {item!r}")
    if not value.isascii() or any((c < " " and c != "\t") or c == "\x7f" for c in value):
        raise ConfigError(f"--header: value of {name!r} has characters not allowed in a header")
    return name.lower().encode("ascii"), value.encode("ascii")


def parse_bind(address: str) -> tuple[str, str | int]:
    """Classify a --bind value: ("tcp", "host", port) style as (kind, target).

    Returns ``("unix", path)``, ``("fd", n)`` or ``("tcp", "host:port")``.
    """
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise ConfigError(f"--bind: empty unix socket path in {address!r}")
        return "unix", path
    if address.startswith("fd://"):
        try:
            fd = int(address[5:])
        except ValueError:
            fd = -1
        if fd < 0:
            raise ConfigError(f"--bind: expected fd://N with N >= 0, got {address!r}")
        return "fd", fd
    split_host_port(address)
    return "tcp", address


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port)."""
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"--bind: expected [IPv6]:PORT, got {address!r}")
        port_text = rest[1:]
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or ":" in host:
            raise ConfigError(
                f"--bind: expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N, got {address!r}"
            )
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--bind: port must be in 0..65535 in {address!r}")
    return host, int(port_text)
