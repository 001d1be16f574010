"""HTTP/2 server side, sans I/O: bascule's own engine and HPACK codec, producing neutral events."""
