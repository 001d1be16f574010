"""Protocol errors: whose fault it was, and the response the driver should give.

``RemoteProtocolError`` is the peer's fault (malformed request, a limit exceeded):
the driver answers with ``status_hint`` and closes.  ``LocalProtocolError`` is
our side's fault, usually an app that asked for something the protocol cannot
express (more body bytes than its Content-Length, a body after the response
ended): the driver logs it and closes the connection.
"""


class ProtocolError(Exception):
    """Root of the protocol errors; ``status_hint`` is the suggested HTTP status."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol or exceeded a limit."""


class LocalProtocolError(ProtocolError):
    """Our side (the app, through the ASGI layer) asked for something invalid."""

    def __init__(self, message: str, status_hint: int = 500) -> None:
        super().__init__(message, status_hint)
