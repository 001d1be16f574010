"""An error while resuming accept() leaves the acceptor paused and retrying, never stopped.

A retry runs from the server's ticker task (timeouts, the Date field, accept retries) and
from a loop callback when a connection closes. It now calls accept() itself, so an
unexpected error there must neither end the ticker nor leave the acceptor half resumed:
marked as accepting with a listener's reader missing (that listener would never accept
again), or marked as paused with a reader still registered (the loop would call accept()
without end while descriptors are short).
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from bascule.aio import accept
from bascule.aio.state import ServerState
from bascule.config import Config

MESSAGE = "unexpected error while resuming accept()"


def test_a_failing_resume_is_logged_and_leaves_accepting_paused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        state = ServerState(Config(app="tests.apps:app").validate(), None, loop)
        acceptor = accept.Acceptor(state, None)
        good = socket.create_server(("127.0.0.1", 0))
        gone = socket.create_server(("127.0.0.1", 0))
        acceptor.add(good, "http://127.0.0.1:1", None)
        acceptor.add(gone, "http://127.0.0.1:2", None)
        acceptor.start()
        acceptor._pause(accept._PAUSED_ON_ERROR)  # as after a failed accept()
        gone.close()  # resuming adds the first listener's reader, then fails on this one

        def check() -> None:
            assert acceptor.paused == accept._PAUSED_ON_ERROR
            assert loop.remove_reader(good.fileno()) is False, "a reader was left behind"
            assert state.connections.on_discard == acceptor._connection_closed

        with caplog.at_level(logging.ERROR, logger="bascule.error"):
            acceptor.tick()  # the ticker's path: raised out of the ticker task before
            check()
            acceptor._connection_closed()  # a connection closed: the loop callback's path
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            check()
        acceptor.close()
        good.close()

    asyncio.run(scenario())
    errors = [r for r in caplog.records if MESSAGE in r.message]
    assert len(errors) == 1, "logged once per interval"
    assert errors[0].exc_info is not None
