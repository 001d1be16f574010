"""The built-in demo app: a page showing the request it received, a stream, a WebSocket echo.

``GET /`` shows the method, path, headers and client as HTML; ``GET /stream``
streams ten lines, one every 100 ms; ``POST /echo`` echoes the body back;
``GET /ws`` is a page whose script talks to the WebSocket echo at ``/ws``.
"""

import asyncio
import html
from typing import Any

from bascule.asgi_types import Receive, Scope, Send

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>bascule</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:50em}}
td{{padding:.2em .8em;vertical-align:top}}code{{background:#f3f3f3}}</style></head>
<body><h1>bascule is serving</h1>
<p>This is the built-in demo app. Serve yours with <code>bascule module:app</code>.</p>
<h2>Your request</h2><table>
<tr><td>method</td><td><code>{method}</code></td></tr>
<tr><td>path</td><td><code>{path}</code></td></tr>
<tr><td>query string</td><td><code>{query}</code></td></tr>
<tr><td>HTTP version</td><td><code>{version}</code></td></tr>
<tr><td>client</td><td><code>{client}</code></td></tr>
</table><h2>Headers</h2><table>{headers}</table>
<p>Try <a href="/stream">/stream</a> for a streamed response and
<a href="/ws">/ws</a> for a WebSocket echo.</p></body></html>
"""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The demo ASGI 3 application."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await _ws_echo(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await _stream(send)
    elif path == "/echo" and scope["method"] == "POST":
        await _echo(receive, send)
    elif path == "/ws":
        await _html(send, _WS_PAGE.encode("utf-8"))
    else:
        await _page(scope, send)


_WS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>bascule WebSocket echo</title></head>
<body style="font-family:system-ui,sans-serif;margin:2em">
<h1>WebSocket echo</h1>
<form id="f"><input id="m" value="hello" autocomplete="off"> <button>send</button></form>
<pre id="log"></pre>
<script>
const log = (t) => { document.getElementById("log").textContent += t + "\\n"; };
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onopen = () => log("open");
ws.onmessage = (e) => log("< " + e.data);
ws.onclose = (e) => log("closed " + e.code);
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const m = document.getElementById("m").value;
  ws.send(m); log("> " + m);
};
</script></body></html>
"""


async def _ws_echo(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def _html(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _page(scope: Scope, send: Send) -> None:
    rows = "".join(
        f"<tr><td>{html.escape(n.decode('latin-1'))}</td><td><code>{html.escape(v.decode('latin-1'))}"
        "</code></td></tr>"
        for n, v in scope["headers"]
    )
    client: Any = scope.get("client")
    body = _PAGE.format(
        method=html.escape(scope["method"]),
        path=html.escape(scope["path"]),
        query=html.escape(scope["query_string"].decode("latin-1")),
        version=scope["http_version"],
        client=html.escape(f"{client[0]}:{client[1]}" if client else "-"),
        headers=rows,
    ).encode("utf-8")
    await _html(send, body)


async def _stream(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    for i in range(10):
        await send(
            {"type": "http.response.body", "body": f"line {i}\n".encode(), "more_body": True}
        )
        await asyncio.sleep(0.1)
    await send({"type": "http.response.body", "body": b""})


async def _echo(receive: Receive, send: Send) -> None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
