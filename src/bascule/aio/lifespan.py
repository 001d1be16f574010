"""Run the ASGI lifespan protocol against the app, with the pure LifespanCycle."""

from __future__ import annotations

import asyncio
from typing import Any

from bascule.asgi.lifespan import LifespanCycle, Phase
from bascule.errors import AppMessageError, LifespanFailure
from bascule.logs import error_log

_SCOPE_ASGI = {"version": "3.0", "spec_version": "2.0"}


class Lifespan:
    """Startup and shutdown of one app.  ``state`` is the scope's shared state."""

    def __init__(self, app: Any, mode: str) -> None:
        self.app = app
        self.mode = mode  # "auto" or "on"
        self.state: dict[str, Any] = {}
        self.cycle = LifespanCycle()
        self.supported = True
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent_any = False
        self._error: BaseException | None = None

    async def _receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def _send(self, message: Any) -> None:
        self._sent_any = True
        self.cycle.on_message(message)
        self._changed.set()

    async def _main(self) -> None:
        scope = {"type": "lifespan", "asgi": _SCOPE_ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:
            self._error = exc
        finally:
            self._changed.set()

    async def startup(self) -> None:
        """Raise LifespanFailure if the app's startup failed (or, with mode on, crashed)."""
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._wait_for(Phase.STARTING)
        if self.cycle.phase is Phase.STARTED:
            return
        if self.cycle.phase is Phase.START_FAILED:
            raise LifespanFailure(
                f"application startup failed: {self.cycle.message or '(no message)'}"
            )
        error = self._error
        if isinstance(error, AppMessageError):
            raise LifespanFailure(str(error))
        if self.mode == "auto" and not self._sent_any:
            self.supported = False
            reason = f"{type(error).__name__}: {error}" if error is not None else "returned"
            error_log.info(
                "ASGI lifespan not supported by the app (%s); continuing without it", reason
            )
            return
        if error is not None:
            error_log.error("exception in lifespan startup", exc_info=error)
            raise LifespanFailure(f"application startup raised {type(error).__name__}: {error}")
        raise LifespanFailure("application returned during lifespan startup without completing it")

    def cancel(self) -> None:
        """Stop the lifespan task (startup interrupted)."""
        if self._task is not None:
            self._task.cancel()

    async def shutdown(self, timeout: float) -> None:
        """Run lifespan shutdown; log (do not raise) a failure."""
        if not self.supported or self._task is None or self._task.done():
            return
        self.cycle.begin_shutdown()
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._wait_for(Phase.STOPPING), timeout)
        except TimeoutError:
            error_log.error("lifespan shutdown did not complete within %.3gs", timeout)
            self._task.cancel()
            return
        if self.cycle.phase is Phase.STOP_FAILED:
            error_log.error("application shutdown failed: %s", self.cycle.message or "(no message)")
        elif self._error is not None and self.cycle.phase is Phase.STOPPING:
            error_log.error("exception in lifespan shutdown", exc_info=self._error)

    async def _wait_for(self, phase: Phase) -> None:
        """Wait while the cycle stays in ``phase`` and the app task runs."""
        assert self._task is not None
        while self.cycle.phase is phase and not self._task.done():
            self._changed.clear()
            await self._changed.wait()
