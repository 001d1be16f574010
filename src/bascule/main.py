"""The programmatic entry points: ``run()`` (blocking) and ``serve()`` (async)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from bascule.aio.server import Server
from bascule.config import Config, Interface, LoopChoice
from bascule.errors import AppLoadError, ConfigError
from bascule.importer import asgi2_to_asgi3, is_asgi2, load_app
from bascule.logs import configure_logging, error_log


def prepare_app(config: Config) -> Any:
    """Import the app (or take it), adapt ASGI 2 and WSGI apps to ASGI 3."""
    from bascule.importer import is_wsgi  # noqa: PLC0415 - only prepare_app's code is edited here
    from bascule.wsgi import WSGIAdapter  # noqa: PLC0415

    app = load_app(config.app, os.path.abspath(config.app_dir), config.factory)
    interface = config.interface
    if interface is Interface.AUTO:
        if is_asgi2(app):
            interface = Interface.ASGI2
        elif is_wsgi(app):
            interface = Interface.WSGI
            error_log.info(
                "the app takes (environ, start_response): serving it as WSGI "
                "(--interface asgi3 to override)"
            )
    if interface is Interface.ASGI2:
        return asgi2_to_asgi3(app)
    if interface is Interface.WSGI:
        return WSGIAdapter(app, config.wsgi_max_workers, multiprocess=config.workers > 1)
    return app


async def serve(app: Any, config: Config | None = None) -> int:
    """Serve ``app`` (an ASGI app or a 'module:attr' string) on the running loop.

    Returns the exit status (0 after a graceful stop).
    """
    config = dataclasses.replace(config or Config(), app=app).validate()
    asgi_app = prepare_app(config)
    server = Server(config, asgi_app)
    return await server.serve(install_signals=threading.current_thread() is threading.main_thread())


def loop_factory(choice: LoopChoice) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for ``--loop``."""
    if choice is LoopChoice.ASYNCIO:
        return asyncio.new_event_loop
    try:
        import uvloop  # noqa: PLC0415 - optional dependency
    except ImportError:
        if choice is LoopChoice.UVLOOP:
            raise ConfigError("--loop: uvloop is not installed (pip install uvloop)") from None
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def exit_if_stuck(server: Server, status: int) -> None:
    """End the process now if app tasks ignored their cancellation.

    ``asyncio.Runner`` would wait for them forever when it closes; a server
    that was told to stop must stop, so the process exits without that wait.
    """
    stuck = server.stuck_tasks()
    if stuck:
        error_log.error(
            "%d request(s) ignored cancellation: exiting without waiting for them", stuck
        )
        logging.shutdown()
        os._exit(status or 1)


def run(app: Any = "bascule.demo:app", **options: Any) -> None:
    """Serve ``app`` until SIGINT/SIGTERM.  ``options`` are Config field names.

    With ``workers`` > 1, ``max_requests`` or ``reload``, a supervisor process
    (bascule.supervisor) runs the app in worker processes; otherwise it is
    served in this process.

    Raises ConfigError/AppLoadError for bad options or an app that cannot be
    loaded, and SystemExit with a non-zero status when startup fails.
    """
    from bascule.supervisor import Supervisor, needs_supervisor, pid_file  # noqa: PLC0415

    config = Config(app=app, **options).validate()
    configure_logging(config)
    if needs_supervisor(config):
        # Worker processes import the app themselves: the supervisor never does,
        # so that a worker started after SIGHUP or a file change runs new code.
        status = Supervisor(config).run()
    else:
        with pid_file(config.pid):
            asgi_app = prepare_app(config)
            with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
                server = Server(config, asgi_app)
                status = runner.run(server.serve())
                exit_if_stuck(server, status)
    if status:
        raise SystemExit(status)


__all__ = ["AppLoadError", "ConfigError", "error_log", "run", "serve"]
