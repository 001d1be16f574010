"""A FastAPI JSON endpoint for ``bench/frameworks_run.py``.

``GET /`` returns a small object through a pydantic response model, so each
request pays FastAPI's routing, dependency resolution, validation and JSON
serialisation: the cost a real FastAPI app adds on top of the server.
The body is ``{"message":"Hello, world!","id":1,"tags":["asgi","json"]}``
(``frameworks_run.FASTAPI_BODY``, which the readiness probe compares).
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class Greeting(BaseModel):
    """The response model of ``GET /``."""

    message: str
    id: int
    tags: list[str]


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/")
async def hello() -> Greeting:
    return Greeting(message="Hello, world!", id=1, tags=["asgi", "json"])
