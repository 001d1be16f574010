"""Flask hello-world WSGI app used by ``bench/wsgi_run.py``.

bascule (``--interface wsgi``), gunicorn (sync worker) and hypercorn (WSGI
mode) all serve exactly this app: ``200``, ``text/plain``, 13-byte body.
"""

from __future__ import annotations

from flask import Flask, Response

app = Flask(__name__)

BODY = b"Hello, world!"


@app.get("/")
def hello() -> Response:
    return Response(BODY, mimetype="text/plain")
