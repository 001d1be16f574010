"""TLS: the SSLContext built from the config, ALPN, and the ASGI ``tls`` extension.

The ASGI TLS extension (asgiref specs/tls.rst) gives the app the server
certificate, the client's certificate chain and subject, the TLS version and
the cipher suite, each as the spec defines them.
"""

from __future__ import annotations

import ssl
from typing import Any

from bascule.config import CertReqs, Config
from bascule.errors import ConfigError

_CERT_REQS = {
    CertReqs.NONE: ssl.CERT_NONE,
    CertReqs.OPTIONAL: ssl.CERT_OPTIONAL,
    CertReqs.REQUIRED: ssl.CERT_REQUIRED,
}

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def server_context(config: Config, alpn: list[str]) -> ssl.SSLContext | None:
    """The server SSLContext for ``--certfile`` & co., or None without TLS."""
    if config.certfile is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.certfile, config.keyfile, config.keyfile_password)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--certfile/--keyfile: cannot load the certificate: {exc}") from None
    try:
        context.set_ciphers(config.ciphers)
    except ssl.SSLError:
        raise ConfigError(f"--ciphers: OpenSSL accepts none of {config.ciphers!r}") from None
    context.verify_mode = _CERT_REQS[config.cert_reqs]
    if config.ca_certs is not None:
        try:
            context.load_verify_locations(config.ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--ca-certs: cannot load {config.ca_certs}: {exc}") from None
    context.set_alpn_protocols(alpn)
    context.options |= ssl.OP_NO_COMPRESSION  # CRIME
    return context


def server_cert_pem(config: Config) -> str | None:
    """The first certificate of ``--certfile`` as PEM, for the tls extension."""
    if config.certfile is None:
        return None
    with open(config.certfile, encoding="ascii", errors="replace") as f:
        text = f.read()
    start = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", start)
    if start < 0 or end < 0:
        return None
    return text[start : end + len("-----END CERTIFICATE-----")] + "\n"


def _cipher_ids(context: ssl.SSLContext) -> dict[str, int]:
    return {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}


class TlsInfo:
    """What every TLS connection's scope extension is built from."""

    def __init__(self, config: Config, context: ssl.SSLContext) -> None:
        self.server_cert = server_cert_pem(config)
        self.cipher_ids = _cipher_ids(context)

    def extension(self, ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, Any]:
        """The ``tls`` extension dict for one connection."""
        chain: list[str] = []
        name: str | None = None
        version = cipher = None
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                chain.append(ssl.DER_cert_to_PEM_cert(der))
                name = _rfc4514(ssl_object.getpeercert())
            version = _TLS_VERSIONS.get(ssl_object.version() or "")
            current = ssl_object.cipher()
            if current is not None:
                cipher = self.cipher_ids.get(current[0])
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": chain,
            "client_cert_name": name,
            "client_cert_error": None,
            "tls_version": version,
            "cipher_suite": cipher,
        }


def _rfc4514(cert: Any) -> str | None:
    """The subject of a decoded certificate as an RFC 4514 string (most specific first)."""
    if not cert or "subject" not in cert:
        return None
    short = {
        "commonName": "CN",
        "organizationName": "O",
        "organizationalUnitName": "OU",
        "countryName": "C",
        "stateOrProvinceName": "ST",
        "localityName": "L",
        "emailAddress": "E",
    }
    parts = []
    for rdn in reversed(cert["subject"]):
        parts.append("+".join(f"{short.get(k, k)}={_escape(v)}" for k, v in rdn))
    return ",".join(parts)


def _escape(value: str) -> str:
    out = []
    for i, c in enumerate(value):
        if c in ',+"\\<>;' or (c in " #" and i == 0) or (c == " " and i == len(value) - 1):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)
