"""HTTP/2 cases found in review: windows given back, client GOAWAY, push resets, 500s, field values."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from hyperframe.frame import GoAwayFrame

from tests.conftest import LiveServer
from tests.e2e.test_http2 import h2_client as connect
from tests.support.h2client import H2Client

Live = Callable[..., LiveServer]
Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/noread":
        body = b"not read"
    elif path == "/slow":
        await asyncio.sleep(0.3)
        body = b"slow done"
    else:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
    if path == "/crlf":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"x-a", b"a\r\nset-cookie: x")],
            }
        )
        await send({"type": "http.response.body", "body": b"never"})
        return
    if path == "/fail-after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("after start")
    if path == "/push":
        await send({"type": "http.response.push", "path": "/slow", "headers": []})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


def test_unread_body_gives_the_connection_window_back(live: Live, clients: list[H2Client]) -> None:
    server = live(app)
    client = connect(server, clients)
    first = client.request("POST", "/noread", body=b"x" * 65535)
    assert client.response(first).body == b"not read"
    # The connection window must not stay consumed by bytes the app never read.
    second = client.request("POST", "/echo", body=b"y" * 200_000)
    response = client.response(second, timeout=10)
    assert response.status == 200
    assert len(response.body) == 200_000


def test_client_goaway_lets_in_flight_stream_finish(live: Live, clients: list[H2Client]) -> None:
    server = live(app)
    client = connect(server, clients)
    stream_id = client.request("GET", "/slow")
    frame = GoAwayFrame(0)
    frame.last_stream_id = 0
    frame.error_code = 0
    client.send_raw(frame.serialize())
    response = client.response(stream_id, timeout=5)
    assert response.status == 200
    assert bytes(response.body) == b"slow done"


def test_cancelled_pushes_are_not_a_rapid_reset(live: Live, clients: list[H2Client]) -> None:
    import h2.settings

    server = live(app)
    client = connect(server, clients, settings={h2.settings.SettingCodes.ENABLE_PUSH: 1})
    for _ in range(210):  # more than the reset budget (200)
        stream_id = client.request("GET", "/push")
        client.response(stream_id, timeout=10)
        for promised in list(client.responses):
            if promised % 2 == 0 and not client.responses[promised].done:
                client.reset(promised)  # a browser cancelling a cached asset
                client.responses[promised].reset = 0x8
    assert not client.goaways, "pushes the client cancelled were counted as rapid resets"


def test_failure_after_start_is_a_500_on_http2(
    live: Live, clients: list[H2Client], caplog: pytest.LogCaptureFixture
) -> None:
    server = live(app)
    client = connect(server, clients)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        response = client.response(client.request("GET", "/fail-after-start"))
    assert response.status == 500
    assert response.reset is None


def test_header_value_with_crlf_is_refused_on_http2(
    live: Live, clients: list[H2Client], caplog: pytest.LogCaptureFixture
) -> None:
    server = live(app)
    client = connect(server, clients)
    with caplog.at_level(logging.ERROR, logger="bascule.error"):
        response = client.response(client.request("GET", "/crlf"))
    assert response.status == 500
    assert response.header(b"x-a") is None
    assert any("forbidden character" in r.getMessage() for r in caplog.records)


def test_oversized_header_list_gets_431_and_the_connection_goes_on(
    live: Live, clients: list[H2Client], caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9113 §10.5.1: a header list over the limit is answered 431 on its stream only."""
    server = live(app, h2_max_header_list_size=8192)
    client = connect(server, clients)
    with caplog.at_level(logging.WARNING, logger="bascule.error"):
        big = client.request("GET", "/big", extra=[(b"x-big", b"a" * 20_000)])
        rejected = client.response(big)
        assert rejected.status == 431
        assert bytes(rejected.body) == b"Request Header Fields Too Large\n"
        ok = client.response(client.request("POST", "/echo", body=b"still here"))
    assert (ok.status, bytes(ok.body)) == (200, b"still here")
    assert not client.goaways
    assert any(
        "header list of" in r.getMessage() and "over the 8192-byte limit (431)" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
