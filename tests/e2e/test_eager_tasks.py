"""Apps whose tasks run their first step at once: ``--eager-tasks``, or a task factory.

bascule starts each app's task eagerly on Python 3.12+ (``--eager-tasks``, the default), and
an app may install ``asyncio.eager_task_factory`` at startup, which does the same on the
loop's every ``create_task``. Either way the app runs up to its first real wait before the
task is returned: an app that never waits has answered, and finished, before the server
holds its task. The server must then still read the request's own
events first, hand out pipelined requests without nesting a call per request, and keep
no finished task in its registry (the graceful shutdown would wait on them).

On Python 3.11, which has no eager factory, ``eager_factory`` below does what it does on
the asyncio loop: it builds the Task, takes the first step the Task just scheduled off
the loop's queue, and runs it there and then, with the task current.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
from websockets.frames import Opcode
from websockets.sync.client import connect

from tests.conftest import LiveServer
from tests.e2e.test_websocket_h2 import Client as H2WebSocketClient
from tests.support.lifespan import install_task_factory

Live = Callable[..., LiveServer]


def eager_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """Python 3.12's ``eager_task_factory``, or its equivalent on the 3.11 asyncio loop."""
    if sys.version_info >= (3, 12):
        # uvloop passes eager_start=None on 3.13, which 3.13.0's factory refuses.
        kwargs.pop("eager_start", None)
        return asyncio.eager_task_factory(loop, coro, **kwargs)  # type: ignore[attr-defined,no-any-return]
    task = asyncio.Task(coro, loop=loop, **kwargs)
    handle = loop._ready.pop()  # type: ignore[attr-defined]  # its first step, just scheduled
    outer = asyncio.current_task(loop)  # 3.12 sets the outer task aside for the step
    if outer is not None:
        asyncio.tasks._leave_task(loop, outer)
    try:
        handle._run()
    finally:
        if outer is not None:
            asyncio.tasks._enter_task(loop, outer)
    return task


#: How many of each app's tasks ran their first step inside the factory and finished there.
finished_in_factory: list[int] = [0]


def counting_factory(
    loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
) -> asyncio.Future[Any]:
    task = eager_factory(loop, coro, **kwargs)
    if task.done():
        finished_in_factory[0] += 1
    return task


async def eager_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Installs the eager factory at startup; echoes bodies; serves WebSockets."""
    if scope["type"] == "lifespan":
        await install_task_factory(counting_factory, receive, send)
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        if scope["path"] == "/deny":
            await send({"type": "websocket.close", "code": 1000})
            return
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message["text"]})
    body = b""
    if scope["path"] == "/push":
        await send({"type": "http.response.push", "path": "/pushed", "headers": []})
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            body += message["body"]
            more = message["more_body"]
    else:
        body = scope["path"].encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


NEEDS_312 = pytest.mark.skipif(sys.version_info < (3, 12), reason="eager_start is 3.12+")


@pytest.fixture(params=["factory", pytest.param("builtin", marks=NEEDS_312)])
def mode(request: pytest.FixtureRequest) -> str:
    """``factory``: the app's eager task factory; ``builtin``: bascule's --eager-tasks."""
    return str(request.param)


def start(live: Live, mode: str, http2: bool = False) -> LiveServer:
    finished_in_factory[0] = 0
    if mode == "builtin":
        return live(eager_app, lifespan="off", http2=http2)
    loop = "auto" if sys.version_info >= (3, 12) else "asyncio"
    return live(eager_app, lifespan="on", loop=loop, http2=http2)


def finished_eagerly(mode: str, count: int) -> bool:
    """At least ``count`` tasks finished inside the factory (not counted for ``builtin``)."""
    return mode == "builtin" or finished_in_factory[0] >= count


def registry(server: LiveServer) -> set[asyncio.Task[None]]:
    state = server.server.state
    assert state is not None
    return state.tasks


def wait_for_empty_registry(server: LiveServer) -> None:
    deadline = time.monotonic() + 5
    while registry(server) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not registry(server), f"tasks left in the registry: {registry(server)}"


def test_keep_alive_requests_each_answered(live: Live, mode: str) -> None:
    server = start(live, mode)
    with httpx.Client(timeout=5) as client:
        paths = [client.get(f"{server.url}/{i}").text for i in range(5)]
        echoed = client.post(server.url + "/", content=b"x" * 100_000).content
    assert paths == [f"/{i}" for i in range(5)]
    assert echoed == b"x" * 100_000
    assert finished_eagerly(mode, 5)  # the GETs finished inside the factory
    wait_for_empty_registry(server)


def test_many_pipelined_requests_answered_in_order(live: Live, mode: str) -> None:
    """Each answer inside the factory asks for the next request: no recursion per request."""
    server = start(live, mode)
    count = 3000
    with server.connect() as sock:
        sock.sendall(b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(count)))
        received = b""
        deadline = time.monotonic() + 20
        while received.count(b"HTTP/1.1 200 ") < count and time.monotonic() < deadline:
            data = sock.recv(1 << 20)
            if not data:
                break
            received += data
    responses = received.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(responses) == count
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in responses] == [b"/%d" % i for i in range(count)]
    assert finished_eagerly(mode, count)
    wait_for_empty_registry(server)


def test_body_that_arrives_later_is_read(live: Live, mode: str) -> None:
    """The first step waits for the body: the task is kept, and finishes once it came."""
    server = start(live, mode)
    with server.connect() as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.2)
        assert len(registry(server)) == 1  # waiting in receive()
        sock.sendall(b"world")
        response = b""
        while not response.endswith(b"helloworld"):
            data = sock.recv(65536)
            assert data
            response += data
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")
    wait_for_empty_registry(server)


def test_http2_streams_answered(live: Live, mode: str) -> None:
    server = start(live, mode, http2=True)
    with httpx.Client(http1=False, http2=True, timeout=5) as client:
        texts = [client.get(f"{server.url}/{i}").text for i in range(5)]
        echoed = client.post(server.url + "/", content=b"y" * 50_000).content
    assert texts == [f"/{i}" for i in range(5)]
    assert echoed == b"y" * 50_000
    assert finished_eagerly(mode, 5)
    wait_for_empty_registry(server)


def h2_exchange(server: LiveServer, paths: list[str], push: bool = False) -> dict[int, bytes]:
    """Send every request in one write; the body of each stream that ended, by stream id."""
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    if push:
        conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 1})
    for i, path in enumerate(paths):
        conn.send_headers(
            1 + 2 * i,
            [(":method", "GET"), (":path", path), (":scheme", "http"), (":authority", "x")],
            end_stream=True,
        )
    bodies: dict[int, bytes] = {}
    ended: dict[int, bytes] = {}
    expected = len(paths) * (2 if push else 1)
    with server.connect() as sock:
        sock.sendall(conn.data_to_send())
        deadline = time.monotonic() + 10
        while len(ended) < expected and time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                elif isinstance(event, h2.events.StreamEnded):
                    ended[event.stream_id] = bodies.get(event.stream_id, b"")
            sock.sendall(conn.data_to_send())
    return ended


def test_http2_many_streams_in_one_read(live: Live, mode: str) -> None:
    server = start(live, mode, http2=True)
    ended = h2_exchange(server, [f"/{i}" for i in range(50)])
    assert ended == {1 + 2 * i: b"/%d" % i for i in range(50)}
    wait_for_empty_registry(server)


def test_http2_push_answered(live: Live, mode: str) -> None:
    """The pushed request's app starts (and finishes) inside the step of its parent's."""
    server = start(live, mode, http2=True)
    ended = h2_exchange(server, ["/push"], push=True)
    assert ended == {1: b"/push", 2: b"/pushed"}
    wait_for_empty_registry(server)


def test_websocket_over_http2(live: Live, mode: str) -> None:
    server = start(live, mode, http2=True)
    client = H2WebSocketClient(server.port)
    try:
        assert client.status(client.open(b"/deny")) == 403
        sid = client.open(b"/echo")
        assert client.status(sid) == 200
        client.send_frame(sid, Opcode.TEXT, b"over h2")
        client.read_until(lambda: client.received(sid).endswith(b"over h2"))
    finally:
        client.close()
    wait_for_empty_registry(server)


def test_websocket_accepted_and_denied(live: Live, mode: str) -> None:
    server = start(live, mode)
    with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5) as ws:
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"
    with pytest.raises(Exception, match="403"):
        connect(f"ws://127.0.0.1:{server.port}/deny", open_timeout=5).close()
    wait_for_empty_registry(server)


def test_shutdown_waits_for_no_finished_task(
    live: Live, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = start(live, mode)
    with httpx.Client(timeout=5) as client:
        for i in range(20):
            assert client.get(f"{server.url}/{i}").status_code == 200
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 3
    assert "graceful shutdown timed out" not in caplog.text


def step_app(box: list[LiveServer]) -> Any:
    """Says whether its first step ran before the server kept its task, and in which task."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = asyncio.current_task()
        state = box[0].server.state
        assert task is not None
        assert state is not None
        kept = "kept" if task in state.tasks else "not yet kept"
        body = f"{task.get_name()}: {kept}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize("http2", [False, True])
@pytest.mark.parametrize("eager", [True, False])
def test_eager_tasks_option(live: Live, http2: bool, eager: bool) -> None:
    """--eager-tasks (the default) runs the first step inside start_task on Python 3.12+,
    in its own named task; --no-eager-tasks, and Python 3.11, schedule the task."""
    box: list[LiveServer] = []
    box.append(live(step_app(box), http2=http2, eager_tasks=eager))
    with httpx.Client(http1=not http2, http2=http2, timeout=5) as client:
        texts = {client.get(box[0].url + "/").text for _ in range(3)}
    name = "bascule-http2" if http2 else "bascule-http"
    at_once = eager and sys.version_info >= (3, 12)
    assert texts == {f"{name}: {'not yet kept' if at_once else 'kept'}"}
    wait_for_empty_registry(box[0])


@NEEDS_312
def test_eager_step_never_runs_inside_another_app(live: Live) -> None:
    """The next pipelined request starts inside the previous app's last send(). Started
    eagerly there, its first step would run within that app's frames: here, inside the
    except block that sends its 500, whose exception it would see (and chain to its own)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/fails":
            await asyncio.sleep(0.01)
            try:
                raise ValueError("the first app's error")
            except ValueError:
                body = b"handled"
                await send({"type": "http.response.start", "status": 500, "headers": []})
                await send({"type": "http.response.body", "body": body})
            return
        body = repr(sys.exc_info()[1]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = live(app)
    with server.connect() as sock:
        sock.sendall(b"GET /fails HTTP/1.1\r\nHost: x\r\n\r\nGET /info HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while not received.endswith(b"\r\n0\r\n\r\n") or received.count(b"HTTP/1.1 ") < 2:
            data = sock.recv(65536)
            assert data, received
            received += data
    assert b"HTTP/1.1 500" in received
    assert b"\r\n4\r\nNone\r\n" in received  # chunked: no exception was being handled
