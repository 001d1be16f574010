"""HTTP/1.1 server-side protocol: httptools (llhttp) behind bascule's own sans-I/O connection."""
