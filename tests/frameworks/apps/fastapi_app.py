"""A FastAPI app covering what the framework tests exercise.

Typed routes with validation, JSON bodies through a pydantic model, form
fields and uploaded files, a streaming response held by a gate, background
tasks, a WebSocket endpoint, lifespan state and ``root_path`` (url_for and
the OpenAPI ``servers`` entry).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator
from typing import Annotated, Any, TypedDict

from fastapi import BackgroundTasks, FastAPI, File, Form, Request, UploadFile, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse
from fastapi.websockets import WebSocketDisconnect
from pydantic import BaseModel, Field

from . import gates

STARTUP_LINE = "fastapi-app: lifespan startup"
SHUTDOWN_LINE = "fastapi-app: lifespan shutdown"


class State(TypedDict):
    """What the lifespan hands to every request (``request.state``)."""

    greeting: str
    tasks: dict[str, str]


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[State]:
    print(STARTUP_LINE, file=sys.stderr, flush=True)
    yield {"greeting": "hello from fastapi lifespan", "tasks": {}}
    print(SHUTDOWN_LINE, file=sys.stderr, flush=True)


app = FastAPI(lifespan=lifespan)


class Order(BaseModel):
    """A JSON body FastAPI validates."""

    item: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    notes: list[str] = []


class Priced(BaseModel):
    """The response model of ``POST /orders``."""

    item: str
    quantity: int
    notes: list[str]
    total_cents: int


@app.get("/")
async def home() -> dict[str, str]:
    return {"hello": "fastapi"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"id": item_id, "q": q}


@app.post("/orders", status_code=201)
async def create_order(order: Order) -> Priced:
    return Priced(**order.model_dump(), total_cents=order.quantity * 250)


@app.post("/upload")
async def upload(
    title: Annotated[str, Form()],
    files: Annotated[list[UploadFile], File()],
) -> dict[str, Any]:
    described = []
    for upload_file in files:
        content = await upload_file.read()
        described.append(
            {
                "filename": upload_file.filename,
                "content_type": upload_file.content_type,
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
    return {"title": title, "files": described}


@app.get("/stream/{name}")
async def stream(name: str) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"first\n"
        yield gates.after_gate(await gates.wait_async(name)).encode()

    return StreamingResponse(body(), media_type="text/plain")


@app.post("/release/{name}")
async def release(name: str) -> PlainTextResponse:
    gates.release(name)
    return PlainTextResponse("ok")


async def _finish_task(tasks: dict[str, str], key: str, value: str) -> None:
    await asyncio.sleep(0.05)
    tasks[key] = value


@app.post("/tasks/{key}", status_code=202)
async def start_task(
    key: str, value: str, request: Request, background: BackgroundTasks
) -> dict[str, str]:
    tasks: dict[str, str] = request.state.tasks
    background.add_task(_finish_task, tasks, key, value)
    return {"key": key}


@app.get("/tasks/{key}")
async def task_status(key: str, request: Request) -> dict[str, str | None]:
    tasks: dict[str, str] = request.state.tasks
    return {"value": tasks.get(key)}


@app.get("/state")
async def state(request: Request) -> dict[str, str]:
    return {"greeting": request.state.greeting}


@app.get("/where", name="where")
async def where(request: Request) -> dict[str, str]:
    return {
        "url": str(request.url),
        "root_path": request.scope["root_path"],
        "url_for": str(request.url_for("read_item", item_id="7")),
    }


@app.websocket("/ws/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    await websocket.accept()
    await websocket.send_json({"room": room, "greeting": websocket.state.greeting})
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"room": room, "echo": data})
    except WebSocketDisconnect:
        return
