"""Whole request/response cycles on one H1Connection: pipelining, keep-alive, 100-continue."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from bascule.proto import (
    NEED_DATA,
    PAUSED,
    BodyChunk,
    BodyEnd,
    H1Connection,
    InformationalResponse,
    LocalProtocolError,
    RemoteProtocolError,
    RequestReceived,
    ResponseHead,
)
from bascule.proto.http1.state import DONE, ERROR, IDLE, SEND_BODY, State
from tests.support.h1 import (
    HOST,
    ResponseParser,
    converse,
    describe,
    drain,
    feed,
    request,
    respond,
    ways_to_feed,
)

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def paths(events: Sequence[object]) -> list[bytes]:
    return [e.path for e in events if isinstance(e, RequestReceived)]


# pipelining ----------------------------------------------------------------


def test_second_pipelined_request_waits_until_first_response_is_done() -> None:
    conn = H1Connection()
    conn.receive_data(request(target="/one") + request("POST", "/two", body=b"payload"))

    first = drain(conn)
    assert paths(first) == [b"/one"]
    assert isinstance(first[-1], BodyEnd)
    assert conn.next_event() is PAUSED
    assert conn.pending_requests == 3  # RequestReceived, BodyChunk, BodyEnd of /two

    conn.send(ResponseHead(1, 200, [(b"content-length", b"2")]))
    assert conn.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()  # our response is not finished yet
    conn.send(BodyChunk(1, b"ok"))
    conn.send(BodyEnd(1))
    assert conn.our_state is DONE
    assert conn.next_event() is PAUSED  # still ours to restart the cycle

    conn.start_next_cycle()
    second = drain(conn)
    assert describe(second)[0][1:3] == ("POST", b"/two")
    assert describe(second)[1:] == [("body", b"payload"), ("end",)]
    assert conn.next_event() is PAUSED


def test_pipelined_requests_are_answered_in_order_at_every_split() -> None:
    stream = (
        request(target="/a")
        + request("POST", "/b", body=b"body of b", framing="chunked", chunk_sizes=[4])
        + request(target="/c")
    )
    for label, pieces in ways_to_feed(stream):
        events, written = converse(pieces)
        assert paths(events) == [b"/a", b"/b", b"/c"], label
        assert written.count(b"HTTP/1.1 200 OK\r\n") == 3, label


def test_responses_of_pipelined_requests_parse_back_in_order() -> None:
    conn = H1Connection()
    conn.receive_data(request(target="/1") + request(target="/2"))
    written = b""
    for body in (b"first", b"second"):
        drain(conn)
        written += respond(conn, body=body)
        conn.start_next_cycle()
    peer = ResponseParser()
    assert [(r.status, r.body, r.complete) for r in peer.feed(written)] == [
        (200, b"first", True),
        (200, b"second", True),
    ]


def test_idle_only_between_requests() -> None:
    conn = H1Connection()
    assert conn.idle
    conn.receive_data(b"GET / HTTP/1.1\r\n")
    assert not conn.idle
    conn.receive_data(b"Host: example.com\r\n\r\n")
    drain(conn)
    assert not conn.idle
    respond(conn)
    conn.start_next_cycle()
    assert conn.idle


# keep-alive and close ----------------------------------------------------


def test_http10_request_closes_after_response() -> None:
    conn = H1Connection()
    conn.receive_data(b"GET / HTTP/1.0\r\n\r\n")
    drain(conn)
    head = respond(conn, body=b"x")
    assert b"connection: close\r\n" in head
    assert conn.keep_alive is False
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_http10_keep_alive_stays_open_after_response() -> None:
    conn = H1Connection()
    conn.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert len(drain(conn)) == 2
    assert conn.keep_alive is True
    head = respond(conn, body=b"x")
    assert b"connection: keep-alive\r\n" in head
    conn.start_next_cycle()
    conn.receive_data(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert paths(drain(conn)) == [b"/again"]


def test_bytes_after_connection_close_request_are_ignored_at_every_split() -> None:
    data = request(headers=[*HOST, (b"Connection", b"close")]) + b"\x00garbage \xff\r\n\r\n"
    for label, pieces in ways_to_feed(data):
        conn = H1Connection()
        events = feed(conn, pieces)  # must not raise
        assert describe(events)[0][1:3] == ("GET", b"/"), label
        assert isinstance(events[-1], BodyEnd), label
        assert len(events) == 2, label
        conn.receive_data(b"more garbage")
        assert conn.next_event() is PAUSED, label


def test_request_after_connection_close_request_is_not_parsed() -> None:
    data = request(headers=[*HOST, (b"Connection", b"close")]) + request(target="/next")
    events, written = converse([data])
    assert paths(events) == [b"/"]
    assert b"connection: close\r\n" in written


def test_app_connection_close_ends_keep_alive() -> None:
    conn = H1Connection()
    conn.receive_data(request() + request(target="/never"))
    drain(conn)
    respond(conn, headers=[(b"Connection", b"close"), (b"content-length", b"0")])
    assert conn.keep_alive is False
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_upgrade_request_is_delivered_and_then_closes() -> None:
    data = request(
        target="/ws", headers=[*HOST, (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")]
    )
    conn = H1Connection(accept_upgrades=frozenset({b"websocket"}))
    events = feed(conn, [data + b"\x81\x85not http"])
    req = events[0]
    assert isinstance(req, RequestReceived)
    assert req.path == b"/ws"
    assert req.keep_alive is False
    assert req.upgrade is True
    assert isinstance(events[-1], BodyEnd)
    assert bytes(conn.upgrade_data or b"") == b"\x81\x85not http"  # kept for the new protocol


def test_declined_upgrade_is_plain_http_with_its_body() -> None:
    """An Upgrade the server does not serve (h2c, foo) is read as plain HTTP, body included."""
    data = request(
        method="POST",
        target="/echo",
        headers=[*HOST, (b"Connection", b"keep-alive, Upgrade"), (b"Upgrade", b"h2c")],
        body=b"hello",
    )
    conn = H1Connection(accept_upgrades=frozenset({b"websocket"}))
    events = feed(conn, [data + request(target="/next", headers=HOST)])
    req = events[0]
    assert isinstance(req, RequestReceived)
    assert req.upgrade is False
    assert req.keep_alive is True
    assert (b"upgrade", b"h2c") in req.headers  # the app still sees what was asked
    assert (b"connection", b"keep-alive") in req.headers
    assert b"".join(e.data for e in events if isinstance(e, BodyChunk)) == b"hello"
    assert isinstance(events[-1], BodyEnd)
    conn.send(ResponseHead(1, 200, [(b"content-length", b"0")]))
    conn.send(BodyEnd(1))
    conn.start_next_cycle()
    following = drain(conn)
    assert isinstance(following[0], RequestReceived)
    assert following[0].path == b"/next"


# end of input ------------------------------------------------------------


@pytest.mark.parametrize(
    "partial",
    [
        b"GET / HT",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nab",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc",
    ],
    ids=["request line", "headers", "content-length body", "chunked body"],
)
def test_eof_in_the_middle_of_a_request_is_an_error(partial: bytes) -> None:
    conn = H1Connection()
    conn.receive_data(partial)
    with pytest.raises(RemoteProtocolError) as info:
        conn.receive_eof()
    assert info.value.status_hint == 400


def test_eof_between_requests_is_clean() -> None:
    conn = H1Connection()
    conn.receive_data(request())
    drain(conn)
    respond(conn)
    conn.start_next_cycle()
    conn.receive_eof()
    assert conn.next_event() is NEED_DATA
    conn.receive_data(request(target="/after-eof"))
    assert conn.next_event() is NEED_DATA  # nothing is read after EOF


def test_eof_after_complete_request_still_delivers_it() -> None:
    conn = H1Connection()
    conn.receive_data(request(target="/last"))
    conn.receive_eof()
    assert paths(drain(conn)) == [b"/last"]


# 100-continue ------------------------------------------------------------

EXPECT = (
    b"POST /upload HTTP/1.1\r\nHost: example.com\r\n"
    b"Expect: 100-continue\r\nContent-Length: 4\r\n\r\n"
)


def test_continue_is_sent_once() -> None:
    conn = H1Connection()
    conn.receive_data(EXPECT)
    req = conn.next_event()
    assert isinstance(req, RequestReceived)
    assert req.expect_continue is True
    assert conn.send_continue() == CONTINUE
    assert conn.send_continue() == b""
    conn.receive_data(b"data")
    assert describe(drain(conn)) == [("body", b"data"), ("end",)]


def test_no_continue_once_response_head_was_sent() -> None:
    conn = H1Connection()
    conn.receive_data(EXPECT)
    conn.next_event()
    conn.send(ResponseHead(1, 417, [(b"content-length", b"0")]))
    assert conn.send_continue() == b""


def test_no_continue_without_expect() -> None:
    conn = H1Connection()
    conn.receive_data(request("POST", body=b"data"))
    drain(conn)
    assert conn.send_continue() == b""


def test_continue_is_not_carried_to_the_next_request() -> None:
    conn = H1Connection()
    conn.receive_data(EXPECT + b"data" + request(target="/plain"))
    drain(conn)
    respond(conn)
    conn.start_next_cycle()
    assert paths(drain(conn)) == [b"/plain"]
    assert conn.send_continue() == b""


# our side's transition table (STYLE habit 1) ---------------------------------

EVENTS: dict[str, Callable[[], ResponseHead | InformationalResponse | BodyChunk | BodyEnd]] = {
    "ResponseHead": lambda: ResponseHead(1, 200, []),
    "InformationalResponse": lambda: InformationalResponse(1, 103, []),
    "BodyChunk": lambda: BodyChunk(1, b"x"),
    "BodyEnd": lambda: BodyEnd(1),
}

#: Written out here, not read from state.py, so the test checks the table.
LEGAL: dict[tuple[State, str], State] = {
    (IDLE, "InformationalResponse"): IDLE,
    (IDLE, "ResponseHead"): SEND_BODY,
    (SEND_BODY, "BodyChunk"): SEND_BODY,
    (SEND_BODY, "BodyEnd"): DONE,
}


def connection_in(state: State) -> H1Connection:
    conn = H1Connection()
    conn.receive_data(request())
    drain(conn)
    if state in (SEND_BODY, DONE):
        conn.send(ResponseHead(1, 200, []))
    if state is DONE:
        conn.send(BodyEnd(1))
    if state is ERROR:
        conn.send_failed()
    assert conn.our_state is state
    return conn


@pytest.mark.parametrize("name", sorted(EVENTS))
@pytest.mark.parametrize("state", list(State), ids=[s.name for s in State])
def test_our_transitions_follow_the_table(state: State, name: str) -> None:
    conn = connection_in(state)
    event = EVENTS[name]()
    if (state, name) in LEGAL:
        conn.send(event)
        assert conn.our_state is LEGAL[state, name]
    else:
        with pytest.raises(LocalProtocolError, match=name):
            conn.send(event)
        assert conn.our_state is state


def test_after_send_failed_nothing_more_is_read_or_sent() -> None:
    conn = H1Connection()
    conn.receive_data(request())
    drain(conn)
    conn.send_failed()
    assert conn.keep_alive is False
    conn.receive_data(request(target="/ignored"))
    assert conn.next_event() is PAUSED
    with pytest.raises(LocalProtocolError):
        conn.send(ResponseHead(1, 500, []))
