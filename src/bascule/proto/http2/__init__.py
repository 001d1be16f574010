"""HTTP/2 server side, sans I/O: the ``h2`` package behind bascule's neutral events."""
