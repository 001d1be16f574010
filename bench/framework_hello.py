"""Starlette and FastAPI hello-world apps for the ``starlette`` / ``fastapi`` scenarios.

Both answer ``GET /`` with ``200 Hello, world!`` (``text/plain``), the same bytes as
``bench/app.py``, through the framework's routing and response classes: the framework's
own cost per request is what the scenario adds to the bare app.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse as StarlettePlainText
from starlette.routing import Route

HELLO = "Hello, world!"


async def _starlette_hello(request: Request) -> StarlettePlainText:
    del request  # every request gets the same answer
    return StarlettePlainText(HELLO)


starlette_app = Starlette(routes=[Route("/", _starlette_hello)])

fastapi_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_app.get("/", response_class=PlainTextResponse)
async def _fastapi_hello() -> str:
    return HELLO
