"""A Flask app for the WSGI tests: routes, a file upload and a streaming response."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from flask import Flask, Response, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return "Hello, world!"


@app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, object]:
    return {
        "id": item_id,
        "q": request.args.get("q"),
        "protocol": request.environ["SERVER_PROTOCOL"],
    }


@app.post("/echo")
def echo() -> dict[str, object]:
    return {"json": request.get_json()}


@app.post("/upload")
def upload() -> dict[str, object]:
    f = request.files["file"]
    data = f.read()
    return {
        "filename": f.filename,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": request.form.get("note"),
    }


@app.get("/stream")
def stream() -> Response:
    count = int(request.args.get("n", "5"))

    def generate() -> Iterator[str]:
        for i in range(count):
            yield f"chunk {i} of {request.path}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/missing-view-raises")
def boom() -> str:
    raise RuntimeError("flask view failed")
