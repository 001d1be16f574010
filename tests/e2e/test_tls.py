"""HTTPS: TLS options, the https scheme and the ASGI tls extension, client certificates."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from websockets.sync.client import connect as ws_connect

from bascule.config import Config
from bascule.errors import ConfigError
from tests.conftest import LiveServer

Live = Callable[..., LiveServer]
Scope = dict[str, Any]


async def scope_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(_plain(scope))})
        await send({"type": "websocket.close"})
        return
    while (await receive()).get("more_body"):
        pass
    body = json.dumps(_plain(scope)).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Certs:
    def __init__(self, root: Path) -> None:
        self.ca = trustme.CA()
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.certfile = root / "server.pem"
        self.keyfile = root / "server.key"
        server.cert_chain_pems[0].write_to_path(self.certfile)
        server.private_key_pem.write_to_path(self.keyfile)
        self.ca_file = root / "ca.pem"
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.client = self.ca.issue_cert("client@example.com", common_name="alice")

    def client_context(self, with_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if with_cert:
            self.client.configure_cert(context)
        return context


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return Certs(tmp_path)


def test_https_scope_and_tls_extension(live: Live, certs: Certs) -> None:
    server = live(scope_app, certfile=str(certs.certfile), keyfile=str(certs.keyfile))
    assert server.server.addresses[0].startswith("https://127.0.0.1:")
    url = f"https://127.0.0.1:{server.port}/"
    r = httpx.get(url, verify=certs.client_context(False))
    scope = r.json()
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert (
        tls["server_cert"].strip()
        == certs.certfile.read_text().strip().split("-----END CERTIFICATE-----")[0].strip()
        + "\n-----END CERTIFICATE-----"
    )
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int)
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    # plain HTTP to a TLS port is not served
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{server.port}/", timeout=3)


def test_client_certificate_required(live: Live, certs: Certs) -> None:
    server = live(
        scope_app,
        certfile=str(certs.certfile),
        keyfile=str(certs.keyfile),
        ca_certs=str(certs.ca_file),
        cert_reqs="required",
    )
    url = f"https://127.0.0.1:{server.port}/"
    scope = httpx.get(url, verify=certs.client_context(True)).json()
    tls = scope["extensions"]["tls"]
    assert len(tls["client_cert_chain"]) == 1
    assert tls["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert "CN=alice" in tls["client_cert_name"]
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, verify=certs.client_context(False), timeout=3)


def test_wss_scope(live: Live, certs: Certs) -> None:
    server = live(scope_app, certfile=str(certs.certfile), keyfile=str(certs.keyfile))
    with ws_connect(f"wss://127.0.0.1:{server.port}/", ssl=certs.client_context(False)) as ws:
        scope = json.loads(ws.recv(timeout=5))
    assert scope["scheme"] == "wss"
    assert "tls" in scope["extensions"]
    assert "websocket.http.response" in scope["extensions"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"keyfile": "/nonexistent"}, "--keyfile: needs --certfile"),
        ({"certfile": "/x", "cert_reqs": "required"}, "--cert-reqs required: needs --ca-certs"),
    ],
)
def test_tls_option_combinations(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**options).validate()


def test_unreadable_certificate_is_a_config_error(tmp_path: Path) -> None:
    from bascule.aio.tls import server_context

    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError, match="cannot load the certificate"):
        server_context(Config(certfile=str(bad)).validate(), ["http/1.1"])
