"""WebSocket, sans I/O: the handshake (``handshake``), compression negotiation (``deflate``)
and the frame layer (``connection``), separate so the frame layer also serves RFC 8441."""
