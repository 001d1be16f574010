"""Logging of the real ``bascule`` command: --log-format json, --access-log-format,
--log-config (dictConfig and fileConfig), and escaping of client-sent text."""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from bascule.logs import JsonFormatter, TextFormatter

from .process import APPS_DIR, BasculeProcess, run_bascule, start_bascule

HTTP_TIMEOUT = 10.0
APP = ["e2e_app:app", "--app-dir", str(APPS_DIR), "--port", "0"]

# What must never reach a log line from a client: C0/C1 controls, DEL, U+2028/9.
# (Line feeds split the lines we read, so a smuggled one shows up as an extra line.)
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")

# An app that answers, or raises with a message quoting the request when the path says so.
INJECT_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"].startswith("/boom"):
        raise RuntimeError("boom for " + scope["method"] + "\\n\\x1b[31mFAKE line")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def wait_for_count(server: BasculeProcess, pattern: str, count: int, timeout: float = 5) -> None:
    """Wait (bounded) until ``count`` stderr lines match ``pattern``."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while sum(1 for line in server.lines if regex.search(line)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} lines match {pattern!r}:\n{server.stderr}")
        time.sleep(0.02)


def raw_http1(port: int, request: bytes) -> bytes:
    """Send raw bytes, read until the server closes (bounded)."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def raw_h2(port: int, headers: list[tuple[bytes, bytes]]) -> int | None:
    """One HTTP/2 request (prior knowledge) with fields h2 would refuse to send; its status,
    or None when the server reset the stream or closed the connection."""
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    conn.send_headers(1, headers, end_stream=True)
    status: int | None = None
    deadline = time.monotonic() + HTTP_TIMEOUT
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(conn.data_to_send())
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return status
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(
                    event,
                    h2.events.StreamEnded | h2.events.StreamReset | h2.events.ConnectionTerminated,
                ):
                    return status
            sock.sendall(conn.data_to_send())
    raise AssertionError("no HTTP/2 response in time")


def h2_fields(method: bytes, path: bytes, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method),
        (b":path", path),
        (b":scheme", b"http"),
        (b":authority", b"a"),
        *extra,
    ]


# --log-format json ----------------------------------------------------------------------------


def test_json_lines_for_both_loggers(tmp_path: Path) -> None:
    (tmp_path / "inject_app.py").write_text(INJECT_APP, encoding="utf-8")
    args = ["inject_app:app", "--port", "0", "--log-format", "json"]
    with start_bascule(args, tmp_path) as server:
        response = httpx.get(server.url + "/hello?x=1", timeout=HTTP_TIMEOUT)
        assert response.status_code == 200
        assert httpx.get(server.url + "/boom", timeout=HTTP_TIMEOUT).status_code == 500
        wait_for_count(server, '"bascule.access"', 2)
        assert server.stop() == 0
    records = [json.loads(line) for line in server.lines]  # every line is one object
    assert {r["logger"] for r in records} == {"bascule.error", "bascule.access"}
    assert all({"timestamp", "level", "logger", "message", "pid"} <= set(r) for r in records)
    assert all(r["pid"] == server.pid for r in records)
    listening = [r for r in records if "listening on" in r["message"]]
    assert listening[0]["level"] == "INFO"
    assert listening[0]["logger"] == "bascule.error"
    hello = next(r for r in records if r.get("path") == "/hello?x=1")
    assert hello["logger"] == "bascule.access"
    assert hello["method"] == "GET"
    assert hello["query"] == "x=1"
    assert hello["protocol"] == "HTTP/1.1"
    assert hello["status"] == 200
    assert hello["bytes"] == 2
    assert isinstance(hello["duration_ms"], float)
    assert hello["client"].startswith("127.0.0.1:")
    assert '"GET /hello?x=1 HTTP/1.1" 200 2 ' in hello["message"]  # the text line, too
    crash = next(r for r in records if r["level"] == "ERROR")
    assert crash["message"] == 'exception in ASGI app for "GET /boom"'
    assert crash["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom for GET\n\\x1b[31mFAKE line" in crash["exception"]


# --access-log-format --------------------------------------------------------------------------


def test_access_log_format_fields(tmp_path: Path) -> None:
    template = (
        "{client}|{method}|{path}|{query}|{protocol}|{scheme}|{status}|{bytes}|"
        "{duration_ms:.3f}|{header_user_agent}|{header_x_missing}|{pid}|{time}"
    )
    with start_bascule([*APP, "--access-log-format", template], tmp_path) as server:
        response = httpx.get(
            server.url + "/scope?a=1", headers={"User-Agent": "probe/1"}, timeout=HTTP_TIMEOUT
        )
        with httpx.Client(http1=False, http2=True, timeout=HTTP_TIMEOUT) as h2_client:
            assert h2_client.get(server.url + "/").http_version == "HTTP/2"
        raw_http1(server.port, b"BAD\r\n\r\n")  # rejected before it could be read
        wait_for_count(server, r"bascule\.access", 3)
    lines = [
        line.split("bascule.access: ", 1)[1] for line in server.lines if "bascule.access" in line
    ]
    fields = lines[0].split("|")
    assert fields[0].startswith("127.0.0.1:")
    assert fields[1:8] == [
        "GET",
        "/scope?a=1",
        "a=1",
        "HTTP/1.1",
        "http",
        "200",
        str(len(response.content)),
    ]
    assert re.fullmatch(r"\d+\.\d{3}", fields[8])
    assert fields[9:12] == ["probe/1", "-", str(server.pid)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", fields[12])
    assert lines[1].split("|")[1:7] == ["GET", "/", "", "HTTP/2", "http", "200"]
    assert lines[2].split("|")[1:7] == ["-", "-", "", "-", "-", "400"]


def test_default_access_line_is_unchanged(tmp_path: Path) -> None:
    with start_bascule(APP, tmp_path) as server:
        httpx.get(server.url + "/scope?a=1", timeout=HTTP_TIMEOUT)
        line = server.wait_for_line("bascule.access")
    assert re.search(
        r"\[\d+\] INFO bascule\.access: 127\.0\.0\.1:\d+ - \"GET /scope\?a=1 HTTP/1\.1\" 200 \d+ \d+\.\d\dms$",
        line,
    ), line


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{client} {nope}", "--access-log-format: unknown field {nope} (known: client, method"),
        ("{client.real}", "--access-log-format: unknown field {client.real}"),
        ("{} {status}", "--access-log-format: fields must be named, like {client}"),
        ("{status:q}", "--access-log-format: Unknown format code 'q'"),
        ("{status", "--access-log-format: expected '}' before end of string"),
    ],
)
def test_bad_access_log_format_exits_2(tmp_path: Path, template: str, message: str) -> None:
    result = run_bascule([*APP, "--access-log-format", template], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"bascule: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1


# --log-config ---------------------------------------------------------------------------------

DICT_CONFIG: dict[str, Any] = {
    "version": 1,
    "formatters": {"plain": {"format": "DICTCFG %(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "err": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {"bascule": {"handlers": ["err"], "level": "INFO"}},
}

INI_CONFIG = """
[loggers]
keys=root,bascule

[handlers]
keys=err

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_bascule]
level=INFO
handlers=err
qualname=bascule
propagate=0

[handler_err]
class=StreamHandler
formatter=plain
args=(sys.stderr,)

[formatter_plain]
format=INICFG %(name)s %(message)s
"""


@pytest.mark.parametrize(
    ("name", "body", "prefix"),
    [
        ("logging.json", json.dumps(DICT_CONFIG), "DICTCFG bascule.access INFO "),
        ("logging.toml", None, "DICTCFG bascule.access INFO "),
        ("logging.yaml", None, "DICTCFG bascule.access INFO "),
        ("logging.ini", INI_CONFIG, "INICFG bascule.access "),
    ],
)
def test_log_config_file_replaces_bascule_handlers(
    tmp_path: Path, name: str, body: str | None, prefix: str
) -> None:
    if name.endswith(".toml"):
        body = (
            "version = 1\n"
            "[formatters.plain]\nformat = 'DICTCFG %(name)s %(levelname)s %(message)s'\n"
            "[handlers.err]\nclass = 'logging.StreamHandler'\nformatter = 'plain'\n"
            "stream = 'ext://sys.stderr'\n"
            "[loggers.bascule]\nhandlers = ['err']\nlevel = 'INFO'\n"
        )
    elif name.endswith(".yaml"):
        import yaml

        body = yaml.safe_dump(DICT_CONFIG)
    assert body is not None
    (tmp_path / name).write_text(body, encoding="utf-8")
    with start_bascule([*APP, "--log-config", name], tmp_path) as server:
        httpx.get(server.url + "/x", timeout=HTTP_TIMEOUT)
        line = server.wait_for_line("bascule.access")
        assert server.stop() == 0
    assert line.startswith(prefix + "127.0.0.1:")
    assert '"GET /x HTTP/1.1" 200 3 ' in line
    # every line went through the file's handler: none in bascule's own format
    marker = prefix.split(maxsplit=1)[0]
    assert all(ln.startswith(marker) for ln in server.lines), server.stderr


def test_log_config_with_bascule_json_formatter(tmp_path: Path) -> None:
    config = {
        "version": 1,
        "formatters": {"json": {"()": "bascule.logs.JsonFormatter"}},
        "handlers": {
            "out": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["out"], "level": "INFO"},
    }
    (tmp_path / "log.json").write_text(json.dumps(config), encoding="utf-8")
    args = [*APP, "--log-config", "log.json", "--access-log-format", "{method} {header_accept}"]
    with start_bascule(args, tmp_path) as server:
        httpx.get(server.url + "/y", headers={"Accept": "text/x"}, timeout=HTTP_TIMEOUT)
        wait_for_count(server, '"bascule.access"', 1)
    access = next(r for r in map(json.loads, server.lines) if r["logger"] == "bascule.access")
    assert access["message"] == "GET text/x"
    assert (access["path"], access["status"], access["header_accept"]) == ("/y", 200, "text/x")


def test_no_access_log_with_log_config(tmp_path: Path) -> None:
    (tmp_path / "log.json").write_text(json.dumps(DICT_CONFIG), encoding="utf-8")
    with start_bascule([*APP, "--log-config", "log.json", "--no-access-log"], tmp_path) as server:
        assert httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).status_code == 200
        assert server.stop() == 0
    assert "bascule.access" not in server.stderr
    assert "DICTCFG bascule.error INFO bascule stopped" in server.stderr


@pytest.mark.parametrize(
    ("name", "body", "reason"),
    [
        ("bad.json", "{nope", "Expecting property name enclosed in double quotes"),
        ("list.json", "[1]", "expected a mapping at the top level"),
        ("bad.ini", "[loggers]\nkeys=root\n", "missing section or key 'formatters'"),
        ("bad.yaml", "a: [", "while parsing a flow"),
        ("bad.toml", "version = ", "Invalid value"),
        (
            "handler.json",
            json.dumps({"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}),
            "Unable to configure handler 'h'",
        ),
        ("missing.json", None, "no such file"),
    ],
)
def test_bad_log_config_exits_2(tmp_path: Path, name: str, body: str | None, reason: str) -> None:
    if body is not None:
        (tmp_path / name).write_text(body, encoding="utf-8")
    result = run_bascule([*APP, "--log-config", name], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"bascule: error: --log-config: {name}: "), result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr


def test_log_level_with_log_config_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "log.json").write_text(json.dumps(DICT_CONFIG), encoding="utf-8")
    args = [*APP, "--log-config", "log.json", "--log-level", "debug"]
    with start_bascule(args, tmp_path) as server:
        pass
    assert server.lines[0] == (
        "bascule: warning: --log-level has no effect with --log-config "
        "(the file sets levels and formats)"
    )


# log injection --------------------------------------------------------------------------------

INJECTIONS_H1 = [
    # quotes and backslashes could fake the end of the quoted request in the default line
    b'GET /inj-1/a"b\\c?q="x" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    # obs-text and C1 controls in a header value (CSI \x9b is a terminal escape on its own)
    b"GET /inj-2 HTTP/1.1\r\nHost: a\r\nUser-Agent: x\x9b2J\x85y\tz\xff\r\nConnection: close\r\n\r\n",
]
INJECTIONS_H2 = [
    # ESC in :path and :method: refused (400) like HTTP/1.1 refuses them; the
    # warning that names the problem quotes them
    h2_fields(b"GET", b"/inj-3/\x1b[2J\x1b]0;title\x07"),
    h2_fields(b"G\x1b[31mET", b"/inj-4"),
    # obs-text and C1 bytes are legal in a field value: served, and escaped in the log
    h2_fields(b"GET", b"/inj-5/", (b"user-agent", b"\x9b1m\xe2\x80\xa8\xc2\x85bold")),
    h2_fields(b"POST", b"/boom-6"),  # app crash: its message holds an escape sequence
]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_client_text_cannot_break_lines_or_send_escapes(tmp_path: Path, log_format: str) -> None:
    (tmp_path / "inject_app.py").write_text(INJECT_APP, encoding="utf-8")
    template = "{client} {method} {path} {header_user_agent} {status}"
    args = ["inject_app:app", "--port", "0", "--log-format", log_format]
    args += ["--access-log-format", template]
    with start_bascule(args, tmp_path) as server:
        for request in INJECTIONS_H1:
            assert raw_http1(server.port, request).startswith(b"HTTP/1.1 200 ")
        statuses = [raw_h2(server.port, fields) for fields in INJECTIONS_H2]
        assert statuses == [400, 400, 200, 500]
        answered = 2 + sum(1 for status in statuses if status is not None)
        wait_for_count(server, "bascule.access", answered)
        assert server.stop() == 0
    lines = server.lines
    bad = [line for line in lines if CONTROL.search(line)]
    assert bad == [], bad
    if log_format == "json":
        records = [json.loads(line) for line in lines]
        access = [r for r in records if r["logger"] == "bascule.access"]
    else:
        access = [{"message": line} for line in lines if "bascule.access" in line]
    # one access line per answered request, each for exactly one marker
    assert len(access) == answered, server.stderr
    for marker in ("/inj-1", "/inj-2"):
        assert sum(marker in r["message"] for r in access) == 1
    joined = "\n".join(r["message"] for r in access)
    assert "/inj-1/a\\x22b\\x5cc?q=\\x22x\\x22" in joined
    assert "x\\x9b2J\\x85y\\x09z\\xff" in joined  # the user agent, in the template or JSON
    if log_format == "json":
        inj2 = next(r for r in access if r.get("path") == "/inj-2")
        assert inj2["header_user_agent"] == "x\\x9b2J\\x85y\\x09z\\xff"
    # the HTTP/2 requests: whatever the server did with them, nothing raw got through
    for status, marker in zip(statuses, ("/inj-3", "/inj-4", "/inj-5", "/boom-6"), strict=True):
        if status == 200:
            assert sum(marker in r["message"] for r in access) == 1, (marker, status)
    assert "\\x9b1m\\xe2\\x80\\xa8\\xc2\\x85bold" in joined
    messages = [r["message"] for r in records] if log_format == "json" else lines
    crash = [message for message in messages if "exception in ASGI app" in message]
    assert len(crash) == 1
    assert 'exception in ASGI app for "POST /boom-6"' in crash[0]
    refused = [message for message in messages if "bad request from" in message]
    assert len(refused) == 2, refused
    assert "invalid character in :path" in refused[0]
    assert "invalid method" in refused[1]


# the formatters, in-process -------------------------------------------------------------------


def make_record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("bascule.error", logging.ERROR, __file__, 1, message, args, exc_info)


def raised() -> BaseException:
    try:
        raise ValueError("bad\n\x1b[2Jvalue")
    except ValueError as exc:
        return exc


def test_text_formatter_escapes_messages_and_keeps_traceback_lines() -> None:
    formatter = TextFormatter("%(levelname)s %(message)s")
    out = formatter.format(
        make_record("from %s: %s", "1.2.3.4", "x\r\ny\x1b\x9b\u2028", exc=raised())
    )
    first, *rest = out.split("\n")
    assert first == "ERROR from 1.2.3.4: x\\x0d\\x0ay\\x1b\\x9b\\u2028"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-2:] == ["ValueError: bad", "\\x1b[2Jvalue"]
    assert not CONTROL.search(out)


def test_json_formatter_is_one_ascii_line() -> None:
    out = JsonFormatter().format(make_record("caf\u00e9 %s", "\x1b[0m", exc=raised()))
    assert "\n" not in out
    assert out.isascii()
    record = json.loads(out)
    assert record["message"] == "caf\u00e9 \\x1b[0m"
    assert record["level"] == "ERROR"
    assert record["logger"] == "bascule.error"
    assert record["exception"].endswith("ValueError: bad\n\\x1b[2Jvalue")
