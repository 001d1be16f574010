"""ASGI entry point with Django Channels: HTTP to Django, ``/ws/<room>/`` to a consumer.

``tests.frameworks.apps.djproj.channels_asgi:application``; needs ``channels``.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.frameworks.apps.djproj.settings")

# Django must be set up (get_asgi_application does it) before consumers are imported.
django_application = get_asgi_application()

from channels.routing import (  # type: ignore[import-untyped, import-not-found, unused-ignore]  # noqa: E402
    ProtocolTypeRouter,
    URLRouter,
)
from django.urls import path  # type: ignore[import-untyped]  # noqa: E402

from .consumers import EchoConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": URLRouter([path("ws/<str:room>/", EchoConsumer.as_asgi())]),
    }
)
