"""The acceptor's once-a-second retry never takes the server's ticker down with it.

``Acceptor.tick`` runs inside the server's ticker task (timeouts, the Date field, accept
retries). A retry now calls accept() itself, so an error there would end that task for
good, where the same error in a loop callback is only logged by the loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from bascule.aio import accept
from bascule.aio.state import ServerState
from bascule.config import Config


def test_a_failing_retry_is_logged_and_the_tick_returns(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        state = ServerState(Config(app="tests.apps:app").validate(), None, loop)
        acceptor = accept.Acceptor(state, None)
        sock = socket.create_server(("127.0.0.1", 0))
        acceptor.add(sock, "http://127.0.0.1", None)
        acceptor.start()
        acceptor._pause(accept._PAUSED_ON_ERROR)  # as after a failed accept()
        sock.close()  # the listener went away under it: resuming cannot add its reader
        with caplog.at_level(logging.ERROR, logger="bascule.error"):
            acceptor.tick()  # raised out of the ticker before
        # Paused again, so that the next tick retries (and would not log again at once).
        assert acceptor.paused == accept._PAUSED_ON_ERROR

    asyncio.run(scenario())
    errors = [r for r in caplog.records if "unexpected error while retrying accept()" in r.message]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
