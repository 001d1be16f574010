"""A Flask app for bascule's WSGI interface: routes, JSON, file upload, streaming."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request, stream_with_context, url_for

from . import gates

app = Flask(__name__)


@app.route("/")
def home() -> Response:
    return Response("hello, flask", mimetype="text/plain")


@app.route("/items/<int:item_id>")
def item(item_id: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "q": request.args.get("q"),
        "url": request.url,
        "url_for": url_for("item", item_id=item_id),
        "script_root": request.script_root,
        "protocol": request.environ["SERVER_PROTOCOL"],
        "multithread": request.environ["wsgi.multithread"],
        "main_thread": threading.current_thread() is threading.main_thread(),
    }


@app.route("/json", methods=["POST"])
def echo_json() -> tuple[dict[str, Any], int]:
    return {"received": request.get_json()}, 201


@app.route("/upload", methods=["POST"])
def upload() -> dict[str, Any]:
    files = {}
    for name, stored in request.files.items(multi=True):
        content = stored.read()
        files[name] = {
            "filename": stored.filename,
            "content_type": stored.mimetype,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    return {"fields": request.form.to_dict(flat=False), "files": files}


@app.route("/stream/<name>")
def stream(name: str) -> Response:
    def body() -> Iterator[str]:
        yield "first\n"
        yield gates.after_gate(gates.wait_sync(name))
        yield f"{request.path} done\n"  # the request context lives on while streaming

    return Response(stream_with_context(body()), mimetype="text/plain")


@app.route("/release/<name>", methods=["POST"])
def release(name: str) -> str:
    gates.release(name)
    return "ok"
