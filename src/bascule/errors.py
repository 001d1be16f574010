"""bascule's own errors (protocol errors live in ``bascule.proto.errors``)."""


class BasculeError(Exception):
    """Root of bascule's errors."""


class ConfigError(BasculeError):
    """An option has an invalid value; the message names the option."""


class AppLoadError(BasculeError):
    """The application could not be imported or is not callable."""


class AppMessageError(BasculeError):
    """The app sent an ASGI message that breaks the spec; the message names the field."""


class LifespanFailure(BasculeError):
    """Lifespan startup or shutdown failed; the message is the app's."""


class ClientDisconnected(OSError):
    """``send()`` after the client went away (ASGI HTTP spec 2.4: an ``OSError`` subclass)."""
