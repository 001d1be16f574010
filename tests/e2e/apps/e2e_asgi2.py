"""An ASGI 2 (double-callable) application: a class instantiated with the scope."""

import json

from bascule.asgi_types import Receive, Scope, Send


class App:
    """``App(scope)`` then ``await instance(receive, send)``."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(self, receive: Receive, send: Send) -> None:
        if self.scope["type"] != "http":
            return
        body = json.dumps({"interface": "asgi2", "path": self.scope["path"]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
