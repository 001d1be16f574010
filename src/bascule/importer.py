"""Load ``"package.module:attr.path"`` by import and getattr; never eval or exec."""

import importlib
import inspect
import sys
from typing import Any

from bascule.errors import AppLoadError


def import_from_string(target: str) -> Any:
    """The object ``target`` names; AppLoadError with one clear line otherwise."""
    module_name, sep, attrs = target.partition(":")
    if not sep or not module_name or not attrs:
        raise AppLoadError(f"app {target!r} must be in the form 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise AppLoadError(
                f"could not import module {module_name!r}: module not found"
            ) from None
        raise AppLoadError(
            f"error while importing {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    except Exception as exc:
        # The module exists but raised while importing: keep the traceback for
        # the log (the CLI prints it at debug level), give the reason in one line.
        raise AppLoadError(
            f"error while importing {module_name!r}: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = module
    for attr in attrs.split("."):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppLoadError(f"attribute {attrs!r} not found in module {module_name!r}") from None
    return obj


def load_app(target: Any, app_dir: str | None = None, factory: bool = False) -> Any:
    """Import (or take) the app, call the factory if asked, check it is callable."""
    if app_dir is not None and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    app = import_from_string(target) if isinstance(target, str) else target
    name = target if isinstance(target, str) else repr(target)
    if factory:
        if not callable(app):
            raise AppLoadError(f"app factory {name} is not callable")
        try:
            app = app()
        except Exception as exc:
            raise AppLoadError(f"app factory {name} raised {type(exc).__name__}: {exc}") from exc
    if not callable(app):
        raise AppLoadError(f"app {name} is not callable (got {type(app).__name__})")
    return app


def is_asgi2(app: Any) -> bool:
    """True when ``app`` looks like an ASGI 2 (double-callable) application.

    ASGI 3 takes ``(scope, receive, send)`` and is a coroutine function; ASGI 2
    takes ``(scope)`` and returns the instance.  A class whose constructor
    takes just ``scope`` is ASGI 2.
    """
    if inspect.isclass(app):
        return _positional_count(app) == 1
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else app.__call__
    if inspect.iscoroutinefunction(call):
        return False
    return _positional_count(call) == 1


def is_wsgi(app: Any) -> bool:
    """True when ``app`` is unambiguously a WSGI (PEP 3333) application.

    That is a callable that is not a class, whose call takes exactly two
    positional parameters (``environ, start_response``) with no ``*args``,
    and that is neither a coroutine nor an async generator function: a Flask
    app, Django's ``WSGIHandler``, a plain ``def app(environ, start_response)``
    or a WSGI middleware object.  ASGI 3 takes three, ASGI 2 one.  Anything
    else (classes, ``*args`` wrappers, signatures that cannot be read) stays
    ASGI; pass ``--interface wsgi`` for those.
    """
    if inspect.isclass(app):
        return False
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else app.__call__
    for candidate in (app, call):
        if inspect.iscoroutinefunction(candidate) or inspect.isasyncgenfunction(candidate):
            return False
    return _positional_count(call) == 2


def _positional_count(func: Any) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 3
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def asgi2_to_asgi3(app: Any) -> Any:
    """Wrap an ASGI 2 app so it is called the ASGI 3 way."""

    async def asgi3(scope: Any, receive: Any, send: Any) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3
