"""A Starlette app covering what the framework tests exercise.

Routes, JSON, multipart forms with files, a streaming response held by a
gate, background tasks, a WebSocket echo, lifespan state and url_for (for
``--root-path``).  Lifespan startup and shutdown are printed to stderr so the
tests can see them in the server log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import gates

STARTUP_LINE = "starlette-app: lifespan startup"
SHUTDOWN_LINE = "starlette-app: lifespan shutdown"


#: How each /stream/{name} body ended: streaming, finished or cancelled.
outcomes: dict[str, str] = {}


class State(TypedDict):
    """What the lifespan hands to every request (``request.state``)."""

    greeting: str
    tasks: dict[str, str]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    print(STARTUP_LINE, file=sys.stderr, flush=True)
    yield {"greeting": "hello from lifespan", "tasks": {}}
    print(SHUTDOWN_LINE, file=sys.stderr, flush=True)


async def home(request: Request) -> Response:
    return PlainTextResponse("hello, starlette")


async def item(request: Request) -> Response:
    return JSONResponse({"id": request.path_params["item_id"], "q": request.query_params.get("q")})


async def echo_json(request: Request) -> Response:
    data = await request.json()
    return JSONResponse({"received": data, "type": type(data).__name__}, status_code=201)


async def form(request: Request) -> Response:
    fields: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    async with request.form() as submitted:
        for name, value in submitted.multi_items():
            if isinstance(value, UploadFile):
                content = await value.read()
                files[name] = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "size": len(content),
                    "sha256": hashlib.sha256(content).hexdigest(),
                }
            else:
                fields[name] = value
    return JSONResponse({"fields": fields, "files": files})


async def stream(request: Request) -> Response:
    name = request.path_params["name"]

    async def body() -> AsyncIterator[str]:
        outcomes[name] = "streaming"
        try:
            yield "first\n"
            yield gates.after_gate(await gates.wait_async(name))
        except BaseException as exc:
            outcomes[name] = type(exc).__name__
            raise
        outcomes[name] = "finished"

    return StreamingResponse(body(), media_type="text/plain")


async def stream_outcome(request: Request) -> Response:
    return PlainTextResponse(outcomes.get(request.path_params["name"], "unknown"))


async def release(request: Request) -> Response:
    gates.release(request.path_params["name"])
    return PlainTextResponse("ok")


async def _finish_task(tasks: dict[str, str], key: str) -> None:
    await asyncio.sleep(0.05)  # the response has long gone out by now
    tasks[key] = "done"


async def start_task(request: Request) -> Response:
    key = request.path_params["key"]
    tasks: dict[str, str] = request.state.tasks
    tasks[key] = "pending"
    return JSONResponse(
        {"key": key}, status_code=202, background=BackgroundTask(_finish_task, tasks, key)
    )


async def task_status(request: Request) -> Response:
    tasks: dict[str, str] = request.state.tasks
    return JSONResponse({"status": tasks.get(request.path_params["key"], "unknown")})


async def state(request: Request) -> Response:
    return JSONResponse({"greeting": request.state.greeting})


async def where(request: Request) -> Response:
    return JSONResponse(
        {
            "url": str(request.url),
            "path": request.url.path,
            "root_path": request.scope["root_path"],
            "url_for": str(request.url_for("where")),
            "url_for_leaf": str(request.url_for("leaf")),
        }
    )


async def leaf(request: Request) -> Response:
    return PlainTextResponse("leaf")


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=None)
    await websocket.send_json({"greeting": websocket.state.greeting})
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                text: str = message["text"]
                if text == "close":
                    await websocket.close(code=4000, reason="asked to")
                    return
                await websocket.send_text(text.upper())
            else:
                payload: bytes = message["bytes"]
                await websocket.send_bytes(payload[::-1])
    except WebSocketDisconnect:
        return


app = Starlette(
    routes=[
        Route("/", home),
        Route("/items/{item_id:int}", item),
        Route("/json", echo_json, methods=["POST"]),
        Route("/form", form, methods=["POST"]),
        Route("/stream/{name}", stream),
        Route("/release/{name}", release, methods=["POST"]),
        Route("/stream-outcome/{name}", stream_outcome),
        Route("/tasks/{key}", start_task, methods=["POST"]),
        Route("/tasks/{key}", task_status, methods=["GET"]),
        Route("/state", state),
        Route("/where", where, name="where"),
        Mount("/sub", routes=[Route("/leaf", leaf, name="leaf")]),
        WebSocketRoute("/ws", ws_echo),
    ],
    lifespan=lifespan,
)
