"""Settings of the test project: no database, errors printed to stderr."""

from __future__ import annotations

from typing import Any

SECRET_KEY = "tests-only-not-a-secret"  # tests only, never deployed
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.frameworks.apps.djproj.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
DATABASES: dict[str, Any] = {}
USE_TZ = True
# Uploads larger than this go to a temporary file, as in production.
FILE_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024

# A view that crashes must leave its traceback in the server's stderr (the
# tests fail on any traceback there); Django only mails it by default.
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "ERROR"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
