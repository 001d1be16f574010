"""``os.sendfile`` for HTTP/1.1 file bodies on plain sockets.

``http.response.pathsend`` and ``http.response.zerocopysend`` bodies on an HTTP/1.1
connection without TLS go from the file to the socket in the kernel: no read into
Python, no copy. uvloop has no ``loop.sendfile``, so this works on a duplicate of the
socket's descriptor while the transport (with nothing queued) stays out of the way:

- each ``os.sendfile`` call runs in a worker thread (it may wait for the disk) and
  returns as soon as the socket's buffer is full (the socket is non-blocking);
- the wait for the socket to drain is on the event loop (``add_writer`` on the
  duplicate), so a slow client holds no thread;
- if the connection closes meanwhile, the duplicate keeps the socket (not its
  number) alive: bytes can never reach another client's socket, the writes fail.
"""

import asyncio
import os


def sendfile_once(sock_fd: int, file_fd: int, offset: int, count: int) -> int | None:
    """One ``os.sendfile`` call: bytes sent (0: the file ended), None if the socket is full."""
    try:
        return os.sendfile(sock_fd, file_fd, offset, count)
    except BlockingIOError:
        return None


async def writable(loop: asyncio.AbstractEventLoop, sock_fd: int, timeout: float) -> None:
    """Wait until ``sock_fd`` can take more bytes; TimeoutError after ``timeout`` seconds."""
    ready = loop.create_future()
    loop.add_writer(sock_fd, ready.set_result, None)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        raise TimeoutError(f"client read nothing for {timeout:.3g}s") from None
    finally:
        loop.remove_writer(sock_fd)


async def write_all(
    loop: asyncio.AbstractEventLoop, sock_fd: int, data: bytes, timeout: float
) -> None:
    """Write ``data`` to the non-blocking ``sock_fd``, waiting on the loop when it is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(sock_fd, view) :]
        except BlockingIOError:
            await writable(loop, sock_fd, timeout)


async def send_file(
    loop: asyncio.AbstractEventLoop,
    sock_fd: int,
    head: bytes,
    file_fd: int,
    offset: int,
    count: int,
    tail: bytes,
    timeout: float,
) -> int:
    """Write ``head``, ``count`` bytes of ``file_fd`` from ``offset``, then ``tail``.

    Returns the file bytes sent: fewer than ``count`` if the file ended early (``tail``
    is then not written: the body is short, the caller must cut the connection).
    TimeoutError: the client read nothing for ``timeout`` seconds. OSError: it went away.
    """
    await write_all(loop, sock_fd, head, timeout)
    sent = 0
    while sent < count:
        n = await loop.run_in_executor(
            None, sendfile_once, sock_fd, file_fd, offset + sent, count - sent
        )
        if n is None:
            await writable(loop, sock_fd, timeout)
        elif n == 0:
            return sent
        else:
            sent += n
    await write_all(loop, sock_fd, tail, timeout)
    return sent
