"""A Django Channels WebSocket consumer (imported only when channels is installed)."""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import (  # type: ignore[import-untyped, import-not-found, unused-ignore]
    AsyncWebsocketConsumer,
)


class EchoConsumer(AsyncWebsocketConsumer):  # type: ignore[misc, unused-ignore]
    """Greets with the URL's room, then echoes text frames as JSON and binary frames reversed."""

    async def connect(self) -> None:
        self.room: str = self.scope["url_route"]["kwargs"]["room"]
        await self.accept()
        await self.send(text_data=json.dumps({"room": self.room, "path": self.scope["path"]}))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data == "close":
            await self.close(code=4001)
        elif text_data is not None:
            await self.send(text_data=json.dumps({"room": self.room, "echo": text_data}))
        elif bytes_data is not None:
            await self.send(bytes_data=bytes_data[::-1])

    async def disconnect(self, code: Any) -> None:
        return None
