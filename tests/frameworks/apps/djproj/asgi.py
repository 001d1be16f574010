"""ASGI entry point: ``tests.frameworks.apps.djproj.asgi:application``."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.frameworks.apps.djproj.settings")

application = get_asgi_application()
