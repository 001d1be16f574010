"""A lifespan half for test apps that install an asyncio task factory at startup."""

from __future__ import annotations

import asyncio
from typing import Any


async def install_task_factory(factory: Any, receive: Any, send: Any) -> None:
    """Serve the lifespan scope: ``factory`` is the loop's task factory from startup to shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            asyncio.get_running_loop().set_task_factory(factory)
            await send({"type": "lifespan.startup.complete"})
        else:
            asyncio.get_running_loop().set_task_factory(None)
            await send({"type": "lifespan.shutdown.complete"})
            return
