"""Views of the test project: async ones for ASGI, sync ones that also run on WSGI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import (  # type: ignore[import-untyped]
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import reverse  # type: ignore[import-untyped]

from .. import gates


async def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello, django", content_type="text/plain")


async def item(request: HttpRequest, item_id: int) -> JsonResponse:
    await asyncio.sleep(0)  # an await: this view really runs on the event loop
    return JsonResponse(
        {
            "id": item_id,
            "q": request.GET.get("q"),
            "path": request.path,
            "path_info": request.path_info,
            "script_name": request.META.get("SCRIPT_NAME", ""),
            "reverse": reverse("item", args=[item_id]),
            "absolute": request.build_absolute_uri(),
        }
    )


def whoami(request: HttpRequest) -> JsonResponse:
    """A sync view: Django runs it in a thread under ASGI, directly under WSGI."""
    return JsonResponse(
        {
            "method": request.method,
            "main_thread": threading.current_thread() is threading.main_thread(),
            "host": request.get_host(),
            "secure": request.is_secure(),
            "user_agent": request.headers.get("user-agent"),
        }
    )


def echo_json(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    return JsonResponse({"received": json.loads(request.body)}, status=201)


def form(request: HttpRequest) -> JsonResponse:
    """A CSRF-exempt form POST with optional files (see urls.py)."""
    files: dict[str, dict[str, Any]] = {}
    for name, upload in request.FILES.items():
        content = upload.read()
        files[name] = {
            "filename": upload.name,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    fields = {name: request.POST.getlist(name) for name in request.POST}
    return JsonResponse({"fields": fields, "files": files})


def protected(request: HttpRequest) -> HttpResponse:
    """A form POST that CsrfViewMiddleware guards (no token: 403 before this runs)."""
    return HttpResponse("accepted", content_type="text/plain")


def stream_async(request: HttpRequest, name: str) -> StreamingHttpResponse:
    """Streams from an async iterator (ASGI serves it without buffering)."""

    async def body() -> AsyncIterator[bytes]:
        yield b"first\n"
        yield gates.after_gate(await gates.wait_async(name)).encode()

    return StreamingHttpResponse(body(), content_type="text/plain")


def stream_sync(request: HttpRequest, name: str) -> StreamingHttpResponse:
    """Streams from a sync iterator (WSGI serves it without buffering)."""

    def body() -> Iterator[bytes]:
        yield b"first\n"
        yield gates.after_gate(gates.wait_sync(name)).encode()

    return StreamingHttpResponse(body(), content_type="text/plain")


def release(request: HttpRequest, name: str) -> HttpResponse:
    gates.release(name)
    return HttpResponse("ok", content_type="text/plain")
