"""Logger names, the TRACE level, log formats and the logging set-up.

bascule logs through the stdlib ``logging`` module only: ``bascule.error``
(server events, app crashes, bad requests) and ``bascule.access`` (one line
per response).  Configure them like any logger, or with ``--log-config``.

No client-sent text reaches a log line unescaped: the request fields of
access lines are escaped where they are read (``escape_field``), and the
formatters bascule installs escape control characters in every message
(``escape_text``), so a client cannot start a new line or send a terminal
escape sequence through a log.  Tracebacks keep their line breaks.
"""

from __future__ import annotations

import logging
import os
import re
import string
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from bascule.errors import ConfigError

if TYPE_CHECKING:
    from bascule.config import Config

TRACE: Final = 5
logging.addLevelName(TRACE, "TRACE")

error_log: Final = logging.getLogger("bascule.error")
access_log: Final = logging.getLogger("bascule.access")

ACCESS_FORMAT: Final = '%s - "%s %s HTTP/%s" %d %d %.2fms'
"""client, method, path?query, HTTP version, status, response body bytes, duration."""

REJECTED_FORMAT: Final = '%s - "-" %d %d -'
"""A request answered before it could be read (400, 408, 413, 414, 431, 426, 505)."""

TEXT_FORMAT: Final = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
"""The line format of bascule's own handlers in ``--log-format text``."""

# escaping ------------------------------------------------------------------------------------

# Request fields (path, query, header values, decoded as latin-1): everything but printable
# ASCII is written as \xNN, and so are '"' and '\' (as nginx does), so that a quoted field
# cannot be closed from inside and every escape in a line is one bascule wrote.
_UNSAFE_FIELD: Final = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# Messages: C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
_UNSAFE_TEXT: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Tracebacks: the same, except the line feeds that separate their lines.
_UNSAFE_MULTILINE: Final = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _hex(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_field(text: str) -> str:
    """A client-sent field (latin-1 decoded) with all but printable ASCII as ``\\xNN``."""
    return _UNSAFE_FIELD.sub(_hex, text) if _UNSAFE_FIELD.search(text) else text


def escape_text(text: str) -> str:
    """``text`` with control characters and line separators as ``\\xNN`` / ``\\uNNNN``."""
    return _UNSAFE_TEXT.sub(_hex, text) if _UNSAFE_TEXT.search(text) else text


def escape_multiline(text: str) -> str:
    """Like :func:`escape_text` but keeps line feeds (for tracebacks)."""
    return _UNSAFE_MULTILINE.sub(_hex, text) if _UNSAFE_MULTILINE.search(text) else text


# formatters ----------------------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """A ``logging.Formatter`` that escapes control characters in messages and tracebacks.

    Usable in a ``--log-config`` file: ``"()": "bascule.logs.TextFormatter"``.
    """

    def __init__(self, fmt: str | None = TEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_text(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return escape_multiline(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return escape_multiline(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, pid, message, and for access
    records the request's fields; ``exception`` holds a traceback.  Pure ASCII, one line.

    Usable in a ``--log-config`` file: ``"()": "bascule.logs.JsonFormatter"``.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": escape_text(record.getMessage()),
        }
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = escape_multiline(record.exc_text)
        if record.stack_info:
            out["stack"] = escape_multiline(self.formatStack(record.stack_info))
        import json  # noqa: PLC0415 (only JSON logs need it; see load_log_config)

        return json.dumps(out, default=str)


# access lines --------------------------------------------------------------------------------

#: Fields of ``--access-log-format`` (plus ``header_<name>`` for request headers).
ACCESS_FIELDS: Final = (
    "client",
    "method",
    "path",
    "query",
    "protocol",
    "scheme",
    "status",
    "bytes",
    "duration_ms",
    "pid",
    "time",
)

# Values of the right types, to check a template (format specs included) at startup.
_SAMPLE: Final[dict[str, Any]] = {
    "client": "127.0.0.1:50000",
    "method": "GET",
    "path": "/",
    "query": "",
    "protocol": "HTTP/1.1",
    "scheme": "http",
    "status": 200,
    "bytes": 0,
    "duration_ms": 0.0,
    "pid": 1,
    "time": "",
}


class AccessFormat:
    """Builds the structured fields of access records, and the line from a template."""

    __slots__ = ("headers", "structured", "template", "wants_pid", "wants_time")

    def __init__(self, template: str | None, structured: bool = True) -> None:
        self.template = template
        #: attach the fields to records (``record.access``) for JSON and user formatters
        self.structured = structured
        #: header field name (``header_user_agent``) → lowercased header name (``user-agent``)
        self.headers: dict[bytes, str] = {}
        self.wants_time = self.wants_pid = False
        if template is not None:
            self._check(template)

    def _check(self, template: str) -> None:
        try:
            parsed = list(string.Formatter().parse(template))
        except ValueError as exc:
            raise ConfigError(f"--access-log-format: {exc} in {template!r}") from None
        sample = dict(_SAMPLE)
        for _literal, name, _spec, _conversion in parsed:
            if name is None:
                continue
            if name == "" or name.isdigit():
                raise ConfigError(
                    "--access-log-format: fields must be named, like {client}; "
                    f"got {{{name}}} in {template!r}"
                )
            if name.startswith("header_") and len(name) > 7 and name[7:].isidentifier():
                self.headers[name[7:].replace("_", "-").lower().encode("latin-1")] = name
                sample[name] = "-"
            elif name not in _SAMPLE:
                known = ", ".join(ACCESS_FIELDS)
                raise ConfigError(
                    f"--access-log-format: unknown field {{{name}}} (known: {known}, header_<name>)"
                )
            self.wants_time = self.wants_time or name == "time"
            self.wants_pid = self.wants_pid or name == "pid"
        try:
            template.format_map(sample)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise ConfigError(f"--access-log-format: {exc} in {template!r}") from None

    def request(
        self,
        client: str,
        method: str,
        scope: dict[str, Any],
        status: int,
        sent: int,
        duration_ms: float,
    ) -> None:
        """Log one answered request."""
        qs = scope["query_string"]
        fields: dict[str, Any] = {
            "client": escape_field(client),
            "method": escape_field(method),
            "path": request_target(scope),
            "query": escape_field(qs.decode("latin-1")) if qs else "",
            "protocol": "HTTP/" + scope["http_version"],
            "scheme": scope.get("scheme", "http"),
            "status": status,
            "bytes": sent,
            "duration_ms": round(duration_ms, 3),
        }
        if self.headers:
            for field in self.headers.values():
                fields[field] = "-"
            for header, value in scope["headers"]:
                key = self.headers.get(header)
                if key is not None:
                    text = escape_field(value.decode("latin-1"))
                    fields[key] = text if fields[key] == "-" else f"{fields[key]}, {text}"
        self._emit(fields)

    def rejected(self, client: str, status: int, sent: int) -> None:
        """Log a request answered before it could be read."""
        fields: dict[str, Any] = {
            "client": escape_field(client),
            "method": "-",
            "path": "-",
            "query": "",
            "protocol": "-",
            "scheme": "-",
            "status": status,
            "bytes": sent,
            "duration_ms": 0.0,
        }
        for name in self.headers.values():
            fields[name] = "-"
        self._emit(fields, rejected=True)

    def _emit(self, fields: dict[str, Any], rejected: bool = False) -> None:
        if self.template is None:
            if rejected:
                line = REJECTED_FORMAT % (fields["client"], fields["status"], fields["bytes"])
            else:
                line = ACCESS_FORMAT % (
                    fields["client"],
                    fields["method"],
                    fields["path"],
                    fields["protocol"][5:],
                    fields["status"],
                    fields["bytes"],
                    fields["duration_ms"],
                )
        else:
            if self.wants_time:
                fields["time"] = datetime.now().astimezone().isoformat(timespec="milliseconds")
            if self.wants_pid:
                fields["pid"] = os.getpid()
            line = self.template.format_map(fields)
            fields.pop("time", None)
            fields.pop("pid", None)
        if self.structured:
            access_log.info("%s", line, extra={"access": fields})
        else:
            access_log.info("%s", line)


#: Set by configure_logging: None keeps the plain fast path (text lines, no template).
_custom: AccessFormat | None = None


def request_target(scope: dict[str, Any]) -> str:
    """``path?query`` as the client sent it, escaped for log lines."""
    qs = scope["query_string"]
    target: str = scope["raw_path"].decode("latin-1")
    if qs:
        target += "?" + qs.decode("latin-1")
    return _UNSAFE_FIELD.sub(_hex, target) if _UNSAFE_FIELD.search(target) else target


def log_request(
    client: str, method: str, scope: dict[str, Any], status: int, sent: int, duration_ms: float
) -> None:
    """The access line of one answered request (callers check ``access_log.isEnabledFor``)."""
    if _custom is not None:
        _custom.request(client, method, scope, status, sent, duration_ms)
        return
    if not (method.isascii() and method.isalpha()):
        method = escape_field(method)
    if not (client.isascii() and client.isprintable()):
        client = escape_field(client)
    access_log.info(
        ACCESS_FORMAT,
        client,
        method,
        request_target(scope),
        scope["http_version"],
        status,
        sent,
        duration_ms,
    )


def log_rejected(client: str, status: int, sent: int) -> None:
    """The access line of a request answered before it could be read."""
    if access_log.isEnabledFor(logging.INFO):
        if _custom is not None:
            _custom.rejected(client, status, sent)
        else:
            access_log.info(REJECTED_FORMAT, escape_field(client), status, sent)


# set-up --------------------------------------------------------------------------------------


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stderr handler bascule installs (told apart from handlers the user added)."""


def _level(name: str) -> int:
    return TRACE if name == "trace" else int(getattr(logging, name.upper()))


def _remove_own_handlers() -> None:
    for logger in (error_log, access_log):
        for handler in list(logger.handlers):
            if isinstance(handler, _Handler):
                logger.removeHandler(handler)


def configure(level: str, access: bool, log_format: str = "text") -> None:
    """Default set-up: both loggers to stderr in ``log_format``, unless the user added handlers."""
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    for logger, enabled in ((error_log, True), (access_log, access)):
        own = [h for h in logger.handlers if isinstance(h, _Handler)]
        if own:
            for handler in own:
                handler.setFormatter(formatter)
        elif not logger.handlers:
            handler = _Handler(sys.stderr)
            handler.setFormatter(formatter)
            logger.addHandler(handler)
            logger.propagate = False
        logger.setLevel(_level(level) if logger is error_log else logging.INFO)
        logger.disabled = not enabled


def load_log_config(path: str) -> None:
    """Apply a logging configuration file: dictConfig (.json/.yaml/.yml/.toml) or fileConfig.

    Raises ConfigError naming the file when it cannot be read or applied.
    """
    # Imported here, not at the top: a server without --log-config would carry them
    # (with pickle and socketserver, which logging.config pulls in) for nothing.
    import configparser  # noqa: PLC0415
    import json  # noqa: PLC0415
    import logging.config  # noqa: PLC0415
    import tomllib  # noqa: PLC0415

    file = Path(path)
    suffix = file.suffix.lower()
    try:
        if not file.is_file():
            raise ConfigError(f"--log-config: {path}: no such file")
        if suffix in (".json", ".yaml", ".yml", ".toml"):
            text = file.read_text(encoding="utf-8")
            data: Any
            if suffix == ".json":
                data = json.loads(text)
            elif suffix == ".toml":
                data = tomllib.loads(text)
            else:
                data = _load_yaml(path, text)
            if not isinstance(data, dict):
                raise ConfigError(f"--log-config: {path}: expected a mapping at the top level")
            data.setdefault("version", 1)
            data.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(data)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except ConfigError:
        raise
    except (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
        ImportError,
        RuntimeError,
        configparser.Error,
    ) as exc:
        # dictConfig wraps its errors in ValueError; fileConfig lets KeyError through for
        # a missing section; JSON and TOML syntax errors are ValueError subclasses.
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, KeyError):
            reason = f"missing section or key {exc}"
        raise ConfigError(f"--log-config: {path}: {reason}") from None


def _load_yaml(path: str, text: str) -> Any:
    try:
        import yaml  # noqa: PLC0415 - optional, only for YAML files
    except ImportError:
        raise ConfigError(f"--log-config: {path}: YAML files need PyYAML installed") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--log-config: {path}: {exc}") from None


def configure_logging(config: Config) -> None:
    """Set up logging for one process from the options.

    Raises ConfigError for a bad ``--access-log-format`` or ``--log-config``.
    """
    global _custom
    json_lines = config.log_format.value == "json"
    structured = json_lines or config.log_config is not None
    fmt = AccessFormat(config.access_log_format, structured)
    if config.log_config is not None:
        _remove_own_handlers()
        for logger in (error_log, access_log):
            logger.propagate = True
            logger.setLevel(logging.NOTSET)
        load_log_config(config.log_config)
        access_log.disabled = not config.access_log
        _custom = fmt  # records carry the ``access`` fields for the user's formatters
        return
    configure(config.log_level.value, config.access_log, config.log_format.value)
    _custom = fmt if (json_lines or config.access_log_format is not None) else None


__all__ = [
    "ACCESS_FIELDS",
    "TRACE",
    "JsonFormatter",
    "TextFormatter",
    "access_log",
    "configure_logging",
    "error_log",
    "escape_field",
    "escape_text",
    "log_rejected",
    "log_request",
    "request_target",
]
