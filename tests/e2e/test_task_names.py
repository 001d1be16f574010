"""Request tasks carry a fixed, descriptive name (the default "Task-N" costs a format per request)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer

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
