"""The WebSocket echo endpoint the Autobahn|Testsuite fuzzes (``scripts/autobahn``)."""

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo every message back as it came (text as text, bytes as bytes)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
