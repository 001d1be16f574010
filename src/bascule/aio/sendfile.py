"""``os.sendfile`` for HTTP/1.1 file bodies on plain sockets, run in a worker thread.

``http.response.pathsend`` and ``http.response.zerocopysend`` bodies on an HTTP/1.1
connection without TLS go from the file to the socket in the kernel: no read into
Python, no copy. The event loop's transport is bypassed for the time of the body
(uvloop has no ``loop.sendfile``), on a duplicate of the socket's descriptor: if the
connection closes meanwhile, the duplicate keeps the socket (not its number) alive,
so bytes can never reach another client's socket, and the writes fail instead.
"""

import os
import select


def send_file(
    sock_fd: int,
    head: bytes,
    file_fd: int,
    offset: int,
    count: int,
    tail: bytes,
    timeout: float,
) -> int:
    """Write ``head``, ``count`` bytes of ``file_fd`` from ``offset``, then ``tail``.

    ``sock_fd`` is non-blocking: the thread waits for it to be writable, at most
    ``timeout`` seconds each time (TimeoutError: the client stopped reading). Returns
    the file bytes sent, fewer than ``count`` if the file ended early (``tail`` is then
    not written: the body is short, the caller must cut the connection). OSError: the
    client went away.
    """
    poller = select.poll()
    poller.register(sock_fd, select.POLLOUT)

    def wait() -> None:
        if not poller.poll(timeout * 1000):
            raise TimeoutError(f"client read nothing for {timeout:.3g}s")

    def write_all(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(sock_fd, view) :]
            except BlockingIOError:
                wait()

    write_all(head)
    sent = 0
    while sent < count:
        try:
            n = os.sendfile(sock_fd, file_fd, offset + sent, count - sent)
        except BlockingIOError:
            wait()
            continue
        if n == 0:
            return sent
        sent += n
    write_all(tail)
    return sent
