"""A Quart app: routes, JSON, file upload, a streaming response held by a gate, WebSockets."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import AsyncIterator
from typing import Any

from quart import Quart, Response, request, websocket

from . import gates

STARTUP_LINE = "quart-app: before serving"
SHUTDOWN_LINE = "quart-app: after serving"

app = Quart(__name__)
served: dict[str, bool] = {}


@app.before_serving
async def startup() -> None:
    served["started"] = True
    print(STARTUP_LINE, file=sys.stderr, flush=True)


@app.after_serving
async def shutdown() -> None:
    print(SHUTDOWN_LINE, file=sys.stderr, flush=True)


@app.route("/")
async def home() -> str:
    return "hello, quart"


@app.route("/users/<int:user_id>")
async def user(user_id: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "sort": request.args.get("sort"),
        "started": served.get("started", False),
        "http_version": request.http_version,
    }


@app.route("/json", methods=["POST"])
async def echo_json() -> tuple[dict[str, Any], int]:
    data = await request.get_json()
    return {"received": data}, 201


@app.route("/upload", methods=["POST"])
async def upload() -> dict[str, Any]:
    form = await request.form
    files = await request.files
    stored = files["file"]
    content = stored.read()
    return {
        "label": form["label"],
        "filename": stored.filename,
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }


@app.route("/stream/<name>")
async def stream(name: str) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"first\n"
        yield gates.after_gate(await gates.wait_async(name)).encode()

    return Response(body(), mimetype="text/plain")


@app.route("/release/<name>", methods=["POST"])
async def release(name: str) -> str:
    gates.release(name)
    return "ok"


@app.websocket("/ws")
async def ws() -> None:
    await websocket.accept()
    await websocket.send(f"path={websocket.path} q={websocket.args.get('q')}")
    while True:
        message = await websocket.receive()
        if message == "bye":
            await websocket.close(1000, "bye")
            return
        if isinstance(message, bytes):
            await websocket.send(message * 2)
        else:
            await websocket.send(f"quart: {message}")
