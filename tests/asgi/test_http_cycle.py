"""HttpCycle: the app's http.response.* messages validated in order, turned into events."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import pytest

from bascule.asgi.http import CycleState, HttpCycle
from bascule.errors import AppMessageError
from bascule.proto import BodyChunk, BodyEnd, ResponseHead

START = "http.response.start"
BODY = "http.response.body"


def started(headers: Any = ()) -> HttpCycle:
    cycle = HttpCycle()
    cycle.on_message({"type": START, "status": 200, "headers": headers})
    return cycle


def state_of(cycle: HttpCycle) -> CycleState:
    return cycle.state


def error_of(cycle: HttpCycle, message: Any) -> str:
    with pytest.raises(AppMessageError) as info:
        cycle.on_message(message)
    return str(info.value)


# valid sequences ---------------------------------------------------------


def test_start_then_single_body() -> None:
    cycle = HttpCycle(stream_id=7)
    (head,) = cycle.on_message(
        {"type": START, "status": 201, "headers": [(b"content-type", b"text/plain")]}
    )
    assert isinstance(head, ResponseHead)
    assert (head.stream_id, head.status, head.headers) == (
        7,
        201,
        [(b"content-type", b"text/plain")],
    )
    assert state_of(cycle) is CycleState.BODY
    assert cycle.status == 201

    # The final body message is one event carrying its bytes (one DATA frame
    # with END_STREAM on HTTP/2, one write on HTTP/1.1).
    (end,) = cycle.on_message({"type": BODY, "body": b"hello"})
    assert isinstance(end, BodyEnd)
    assert (end.stream_id, end.data, end.trailers) == (7, b"hello", None)
    assert cycle.state is CycleState.DONE


def test_streamed_body() -> None:
    cycle = started()
    first = cycle.on_message({"type": BODY, "body": b"a", "more_body": True})
    empty = cycle.on_message({"type": BODY, "body": b"", "more_body": True})
    last = cycle.on_message({"type": BODY, "more_body": False})
    assert [type(e) for e in first] == [BodyChunk]
    assert empty == []
    assert [type(e) for e in last] == [BodyEnd]


def test_body_defaults_to_empty_and_final() -> None:
    cycle = started()
    assert [type(e) for e in cycle.on_message({"type": BODY})] == [BodyEnd]
    assert cycle.state is CycleState.DONE


def test_missing_or_none_headers_mean_no_headers() -> None:
    (head,) = HttpCycle().on_message({"type": START, "status": 204})
    assert isinstance(head, ResponseHead)
    assert head.headers == []
    (head,) = HttpCycle().on_message({"type": START, "status": 204, "headers": None})
    assert isinstance(head, ResponseHead)
    assert head.headers == []


@pytest.mark.parametrize(
    "headers",
    [
        ((b"x-a", b"1"), (b"x-b", b"2")),
        [[b"x-a", b"1"], [b"x-b", b"2"]],
        [(bytearray(b"x-a"), bytearray(b"1")), (b"x-b", b"2")],
        (pair for pair in [(b"x-a", b"1"), (b"x-b", b"2")]),
    ],
    ids=["tuple of tuples", "list of lists", "bytearrays", "generator"],
)
def test_header_iterables_are_normalised_to_bytes_pairs(headers: Any) -> None:
    (head,) = HttpCycle().on_message({"type": START, "status": 200, "headers": headers})
    assert isinstance(head, ResponseHead)
    assert [tuple(pair) for pair in head.headers] == [(b"x-a", b"1"), (b"x-b", b"2")]
    assert all(type(n) is bytes and type(v) is bytes for n, v in head.headers)


@pytest.mark.parametrize("body", [bytearray(b"data"), memoryview(b"data")])
def test_bytes_like_body_is_accepted(body: Any) -> None:
    (end,) = started().on_message({"type": BODY, "body": body})
    assert isinstance(end, BodyEnd)
    assert end.data == b"data"
    assert type(end.data) is bytes


# errors that name the problem ---------------------------------------------


def test_str_header_value_is_named_exactly() -> None:
    text = error_of(
        HttpCycle(), {"type": START, "status": 200, "headers": [(b"Content-Type", "text/plain")]}
    )
    assert "headers[0] value must be bytes, got str 'text/plain'" in text
    assert text.startswith(START)


def test_str_header_name_is_named_with_its_index() -> None:
    text = error_of(
        HttpCycle(),
        {"type": START, "status": 200, "headers": [(b"x-a", b"1"), ("Content-Type", b"x")]},
    )
    assert "headers[1] name must be bytes, got str 'Content-Type'" in text


@pytest.mark.parametrize(
    ("pair", "shown"),
    [((b"x-a",), "(b'x-a',)"), ((b"a", b"b", b"c"), "(b'a', b'b', b'c')"), (5, "int 5")],
    ids=["one item", "three items", "not iterable"],
)
def test_header_not_a_pair_is_named(pair: Any, shown: str) -> None:
    text = error_of(HttpCycle(), {"type": START, "status": 200, "headers": [pair]})
    assert "headers[0] must be a [name, value] pair" in text
    assert shown in text


@pytest.mark.parametrize("headers", [b"x-a: 1", "x-a: 1", 5, 3.5])
def test_headers_not_an_iterable_of_pairs(headers: Any) -> None:
    text = error_of(HttpCycle(), {"type": START, "status": 200, "headers": headers})
    assert "headers" in text


def test_long_values_are_shortened_in_errors() -> None:
    text = error_of(HttpCycle(), {"type": START, "status": 200, "headers": [(b"x", "v" * 500)]})
    assert "..." in text
    assert len(text) < 200


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("200", "status must be an int, got str '200'"),
        (200.0, "status must be an int, got float 200.0"),
        (True, "status must be an int, got bool True"),
        (None, "status must be an int, got NoneType None"),
        (199, "status must be in 200..999, got 199"),
        (101, "status must be in 200..999, got 101"),
        (1000, "status must be in 200..999, got 1000"),
        (-1, "status must be in 200..999, got -1"),
    ],
)
def test_bad_status_is_named(status: Any, words: str) -> None:
    cycle = HttpCycle()
    assert words in error_of(cycle, {"type": START, "status": status})
    assert cycle.state is CycleState.START


def test_missing_status_is_an_error() -> None:
    assert "status must be an int" in error_of(HttpCycle(), {"type": START})


@pytest.mark.parametrize(
    ("body", "words"), [("text", "body must be bytes, got str 'text'"), (5, "got int 5")]
)
def test_body_not_bytes_is_named(body: Any, words: str) -> None:
    assert words in error_of(started(), {"type": BODY, "body": body})


@pytest.mark.parametrize("more", [1, 0, "yes", None])
def test_more_body_not_bool_is_named(more: Any) -> None:
    text = error_of(started(), {"type": BODY, "body": b"x", "more_body": more})
    assert "more_body must be a bool" in text


# message order -----------------------------------------------------------


def test_body_before_start_is_an_error() -> None:
    text = error_of(HttpCycle(), {"type": BODY, "body": b"x"})
    assert "before http.response.start" in text


def test_start_twice_is_an_error() -> None:
    assert "sent twice" in error_of(started(), {"type": START, "status": 200})


def test_start_after_done_is_an_error() -> None:
    cycle = started()
    cycle.on_message({"type": BODY})
    assert "twice" in error_of(cycle, {"type": START, "status": 200})


def test_body_after_done_is_an_error() -> None:
    cycle = started()
    cycle.on_message({"type": BODY, "body": b"x"})
    assert "after the response was complete" in error_of(cycle, {"type": BODY, "body": b"y"})


@pytest.mark.parametrize(
    "mtype", ["http.request", "websocket.send", "lifespan.startup.complete", "", 5]
)
def test_unknown_type_is_named(mtype: Any) -> None:
    text = error_of(HttpCycle(), {"type": mtype})
    assert f"unexpected message type {mtype!r}" in text


@pytest.mark.parametrize("message", [None, "http.response.start", 5, [START], {"status": 200}])
def test_message_not_a_dict_with_type_is_an_error(message: Any) -> None:
    assert "message must be a dict with a 'type' key" in error_of(HttpCycle(), message)


def test_invalid_message_leaves_the_cycle_usable() -> None:
    cycle = HttpCycle()
    error_of(cycle, {"type": START, "status": 200, "headers": [(b"a", "b")]})
    assert cycle.state is CycleState.START
    (head,) = cycle.on_message({"type": START, "status": 200})
    assert isinstance(head, ResponseHead)


def test_a_mapping_that_is_not_a_dict_is_read_as_one() -> None:
    """Messages are dicts, read with dictionary lookups; another Mapping is copied first."""
    cycle = HttpCycle()
    start = MappingProxyType({"type": START, "status": 201, "headers": [(b"a", b"b")]})
    (head,) = cycle.on_message(start)
    assert isinstance(head, ResponseHead)
    assert (head.status, head.headers) == (201, [(b"a", b"b")])
    (end,) = cycle.on_message(MappingProxyType({"type": BODY, "body": b"done"}))
    assert isinstance(end, BodyEnd)
    assert end.data == b"done"
