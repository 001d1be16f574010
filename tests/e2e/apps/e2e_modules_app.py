"""Says which of the modules bascule imports only when needed are loaded in its process."""

from __future__ import annotations

import json
import sys
from typing import Any

#: Modules a server that has only served plain HTTP should not have imported.
LAZY = ("websockets", "bascule.aio.websocket", "bascule.metrics", "http.server", "logging.config")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "upgraded"})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["type"] != "http":
        return
    loaded = {name: name in sys.modules for name in LAZY}
    body = json.dumps(loaded).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
