"""Request tasks carry a fixed, descriptive name (the default "Task-N" costs a format per request),
and come from the loop's task factory when the app installs one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import LiveServer
from tests.support.lifespan import install_task_factory

Live = Callable[..., LiveServer]


async def name_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    task = asyncio.current_task()
    body = (task.get_name() if task is not None else "no task").encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(("http2", "name"), [(False, "bascule-http"), (True, "bascule-http2")])
def test_request_task_name(live: Live, http2: bool, name: str) -> None:
    server = live(name_app)
    with httpx.Client(http1=not http2, http2=http2, timeout=5) as client:
        first = client.get(server.url + "/")
        second = client.get(server.url + "/")
    assert first.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert first.text == second.text == name


async def ws_name_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    task = asyncio.current_task()
    name = task.get_name() if task is not None else "no task"
    await send({"type": "websocket.send", "text": name})
    await send({"type": "websocket.close", "code": 1000})


def test_websocket_task_name(live: Live) -> None:
    server = live(ws_name_app)
    with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=5) as ws:
        assert ws.recv(timeout=5) == "bascule-websocket"


def factory_app() -> Callable[..., Any]:
    """An app that installs a task factory at startup and says whether a request ran in it."""
    made: set[asyncio.Task[Any]] = set()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.add(task)
        task.add_done_callback(made.discard)
        return task

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await install_task_factory(factory, receive, send)
            return
        task = asyncio.current_task()
        body = b"factory " if task in made else b"default "
        body += (task.get_name() if task is not None else "no task").encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize(("http2", "name"), [(False, "bascule-http"), (True, "bascule-http2")])
def test_a_task_factory_set_by_the_app_makes_the_request_tasks(
    live: Live, http2: bool, name: str
) -> None:
    server = live(factory_app(), lifespan="on")
    with httpx.Client(http1=not http2, http2=http2, timeout=5) as client:
        response = client.get(server.url + "/")
    assert response.text == f"factory {name}"
