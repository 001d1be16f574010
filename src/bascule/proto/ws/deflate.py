"""permessage-deflate negotiation (RFC 7692), through the websockets library's extension.

The client's offers are tried in order; the first one the server can accept
wins.  The negotiated extension enforces the message size limit while it
inflates, so a small compressed frame cannot expand past ``max_size``.
"""

from websockets.exceptions import InvalidHeader, NegotiationError
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.headers import build_extension, parse_extension


def negotiate(offers: list[str], enabled: bool) -> tuple[str | None, list[Extension]]:
    """(``Sec-WebSocket-Extensions`` response value or None, extensions for the frame layer)."""
    if not enabled or not offers:
        return None, []
    factory = ServerPerMessageDeflateFactory()
    for offer in offers:
        try:
            parsed = parse_extension(offer)
        except InvalidHeader:
            continue  # an unparsable offer is ignored, not fatal (RFC 6455 §9.1)
        for name, params in parsed:
            if name != factory.name:
                continue
            try:
                response_params, extension = factory.process_request_params(params, [])
            except NegotiationError:
                continue
            return build_extension([(name, response_params)]), [extension]
    return None, []
