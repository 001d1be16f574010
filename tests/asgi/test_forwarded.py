"""Trusted proxies and X-Forwarded-* / RFC 7239 Forwarded, applied to scopes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from bascule.asgi.forwarded import TrustedProxies, apply, resolve
from bascule.asgi.scope import ConnInfo, http_scope, websocket_scope
from bascule.proto.events import RequestReceived

LOCAL = TrustedProxies(["127.0.0.1", "::1"])


def scope(headers: list[tuple[bytes, bytes]], kind: str = "http") -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "ws" if kind == "websocket" else "http",
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"internal:8000"), *headers],
    }


def applied(headers: list[tuple[bytes, bytes]], proxies: TrustedProxies = LOCAL) -> dict[str, Any]:
    s = scope(headers)
    apply(s, proxies)
    return s


# trust table ------------------------------------------------------------------------------


def test_trusted_entries() -> None:
    proxies = TrustedProxies(["10.0.0.1", " 192.168.0.0/16", "2001:db8::/32", "[::1]"])
    assert proxies.trusts("10.0.0.1")
    assert proxies.trusts("192.168.44.3")
    assert proxies.trusts("2001:db8::abcd")
    assert proxies.trusts("::1")
    assert not proxies.trusts("10.0.0.2")
    assert not proxies.trusts("2001:db9::1")
    assert proxies.trusts("::ffff:10.0.0.1")  # dual-stack view of an IPv4 peer
    assert proxies.trusts("::ffff:192.168.1.1")
    assert not proxies.trusts("not-an-ip")
    assert not proxies.trusts("")
    assert not proxies.trusts_peer(None, unix=True)
    assert not proxies.trusts_peer(None, unix=False)
    assert proxies.trusts_peer("10.0.0.1", unix=False)


def test_unix_and_star() -> None:
    assert TrustedProxies(["unix"]).trusts_peer(None, unix=True)
    assert not TrustedProxies(["unix"]).trusts("127.0.0.1")
    star = TrustedProxies(["*"])
    assert star.trusts("203.0.113.1")
    assert star.trusts("anything")
    assert star.trusts_peer(None, unix=True)


@pytest.mark.parametrize("entry", ["localhost", "10.0.0.0/33", "1.2.3", "unix:/x", "10.0.0.1/x"])
def test_bad_entries_name_themselves(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(entry))):
        TrustedProxies([entry])


# X-Forwarded-* ------------------------------------------------------------------------------


def test_right_most_untrusted_address_is_the_client() -> None:
    s = applied([(b"x-forwarded-for", b"1.1.1.1, 203.0.113.5, 127.0.0.1")])
    assert s["client"] == ("203.0.113.5", 0)


def test_several_xff_headers_are_one_list() -> None:
    s = applied([(b"x-forwarded-for", b"203.0.113.5"), (b"x-forwarded-for", b"127.0.0.1")])
    assert s["client"] == ("203.0.113.5", 0)


def test_all_trusted_gives_the_left_most() -> None:
    s = applied([(b"x-forwarded-for", b"::1, 127.0.0.1")])
    assert s["client"] == ("::1", 0)


@pytest.mark.parametrize(
    ("value", "client"),
    [
        (b"203.0.113.5:4711", ("203.0.113.5", 4711)),
        (b"[2001:db8::1]:80", ("2001:db8::1", 80)),
        (b"[2001:db8::1]", ("2001:db8::1", 0)),
        (b"2001:DB8::1", ("2001:db8::1", 0)),
        (b"unknown", None),
        (b"_hidden", None),
        (b"1.2.3.4:99999", None),
        (b"[::1]x", None),
        (b"fe80::1%eth0", None),
        (b"", None),
    ],
)
def test_xff_entry_forms(value: bytes, client: tuple[str, int] | None) -> None:
    assert applied([(b"x-forwarded-for", value)])["client"] == client


def test_proto_host_port() -> None:
    s = applied(
        [
            (b"x-forwarded-proto", b"HTTPS"),
            (b"x-forwarded-host", b"shop.example"),
            (b"x-forwarded-port", b"8443"),
        ]
    )
    assert s["client"] == ("127.0.0.1", 50000)  # no X-Forwarded-For: unchanged
    assert s["scheme"] == "https"
    assert s["server"] == ("shop.example", 8443)
    assert s["headers"][0] == (b"host", b"shop.example")
    assert [v for n, v in s["headers"] if n == b"host"] == [b"shop.example"]


def test_right_most_value_of_list_headers() -> None:
    s = applied([(b"x-forwarded-proto", b"http, https"), (b"x-forwarded-host", b"a, b.example:99")])
    assert s["scheme"] == "https"
    assert s["server"] == ("b.example", 99)


def test_port_alone_and_default_ports() -> None:
    assert applied([(b"x-forwarded-port", b"9000")])["server"] == ("127.0.0.1", 9000)
    s = applied([(b"x-forwarded-host", b"[2001:db8::1]"), (b"x-forwarded-proto", b"https")])
    assert s["server"] == ("2001:db8::1", 443)
    assert applied([(b"x-forwarded-host", b"plain.example")])["server"] == ("plain.example", 80)


@pytest.mark.parametrize(
    "header",
    [
        (b"x-forwarded-proto", b"ftp"),
        (b"x-forwarded-host", b"evil.example\r\nx: y"),
        (b"x-forwarded-host", b"a b"),
        (b"x-forwarded-host", b"a.example:70000"),
        (b"x-forwarded-port", b"0"),
        (b"x-forwarded-port", b"65536"),
        (b"x-forwarded-port", b"80a"),
    ],
)
def test_invalid_values_are_ignored(header: tuple[bytes, bytes]) -> None:
    s = applied([header])
    assert s["scheme"] == "http"
    assert s["server"] == ("127.0.0.1", 8000)
    assert s["headers"][0] == (b"host", b"internal:8000")


def test_no_forwarding_headers_leaves_the_scope() -> None:
    s = scope([(b"accept", b"*/*")])
    before = dict(s)
    apply(s, LOCAL)
    assert s == before
    assert resolve(s["headers"], LOCAL) is None


def test_websocket_scheme() -> None:
    s = scope([(b"x-forwarded-proto", b"https")], kind="websocket")
    apply(s, LOCAL)
    assert s["scheme"] == "wss"
    s = scope([(b"x-forwarded-proto", b"wss")], kind="http")
    apply(s, LOCAL)
    assert s["scheme"] == "https"


# RFC 7239 Forwarded ------------------------------------------------------------------------


def test_forwarded_element_of_the_client() -> None:
    s = applied(
        [
            (
                b"forwarded",
                b'for=198.51.100.1;proto=http, for="[2001:db8::5]:4711";proto=https;'
                b'host="app.example:8443", for=127.0.0.1;proto=http',
            )
        ]
    )
    assert s["client"] == ("2001:db8::5", 4711)
    assert s["scheme"] == "https"
    assert s["server"] == ("app.example", 8443)


def test_forwarded_case_and_quoting() -> None:
    s = applied([(b"forwarded", b'For="203.0.113.1";Proto="HTTPS";By=127.0.0.1')])
    assert s["client"] == ("203.0.113.1", 0)
    assert s["scheme"] == "https"


def test_forwarded_without_for_keeps_the_client() -> None:
    s = applied([(b"forwarded", b"proto=https;host=a.example")])
    assert s["client"] == ("127.0.0.1", 50000)
    assert s["scheme"] == "https"
    assert s["server"] == ("a.example", 443)


def test_forwarded_obfuscated_and_unknown() -> None:
    assert applied([(b"forwarded", b"for=_hidden")])["client"] is None
    assert applied([(b"forwarded", b"for=unknown, for=127.0.0.1")])["client"] is None


@pytest.mark.parametrize(
    "value",
    [b"for", b"for=1.2.3.4;for=5.6.7.8", b'for="unterminated', b"for=1.2.3.4 proto=https", b";="],
)
def test_malformed_forwarded_is_ignored(value: bytes) -> None:
    s = applied([(b"forwarded", value)])
    assert s["client"] == ("127.0.0.1", 50000)
    assert s["scheme"] == "http"


def test_x_forwarded_wins_over_forwarded() -> None:
    s = applied([(b"forwarded", b"for=192.0.2.1;proto=https"), (b"x-forwarded-for", b"192.0.2.9")])
    assert s["client"] == ("192.0.2.9", 0)
    assert s["scheme"] == "http"  # Forwarded's proto is not mixed in


# through the scope builders -------------------------------------------------------------------


def request(headers: list[tuple[bytes, bytes]]) -> RequestReceived:
    return RequestReceived(
        stream_id=1,
        method="GET",
        path=b"/",
        query=b"",
        headers=[(b"host", b"internal"), *headers],
        http_version="1.1",
        keep_alive=True,
        expect_continue=False,
    )


def test_scope_builders_apply_only_with_a_trust_table() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.5"), (b"x-forwarded-proto", b"https")]
    plain = ConnInfo(("127.0.0.1", 5), ("127.0.0.1", 80), "http", "")
    assert http_scope(request(headers), plain, None, {})["client"] == ("127.0.0.1", 5)
    trusted = ConnInfo(("127.0.0.1", 5), ("127.0.0.1", 80), "http", "", proxies=LOCAL)
    s = http_scope(request(headers), trusted, None, {})
    assert s["client"] == ("203.0.113.5", 0)
    assert s["scheme"] == "https"
    ws = websocket_scope(request(headers), trusted, None, [])
    assert ws["client"] == ("203.0.113.5", 0)
    assert ws["scheme"] == "wss"


def test_websocket_scope_carries_the_proxy_protocol_extension() -> None:
    info = ConnInfo(("1.2.3.4", 5), ("5.6.7.8", 80), "http", "", proxy_protocol={"version": 2})
    ws = websocket_scope(request([]), info, None, [])
    assert ws["extensions"]["proxy_protocol"] == {"version": 2}
    assert (
        "proxy_protocol"
        not in websocket_scope(request([]), ConnInfo(None, None, "http", ""), None, [])[
            "extensions"
        ]
    )
