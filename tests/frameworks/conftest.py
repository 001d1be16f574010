"""Fixtures for the framework tests.

Each test module defines a module-scoped ``server`` fixture (one bascule
process per framework); ``client`` runs every test that takes it over
HTTP/1.1 and over HTTP/2 (h2c, prior knowledge) against that server.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.process import BasculeProcess

from .support import PROTOCOLS, http_client


@pytest.fixture(params=PROTOCOLS)
def client(request: pytest.FixtureRequest, server: BasculeProcess) -> Iterator[httpx.Client]:
    """An httpx client for the module's server, once per protocol."""
    with http_client(server, request.param) as c:
        yield c
