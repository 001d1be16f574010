"""WSGI entry point: ``tests.frameworks.apps.djproj.wsgi:application``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.frameworks.apps.djproj.settings")

application = get_wsgi_application()
