"""Logger names, the TRACE level, and the default logging set-up.

bascule logs through the stdlib ``logging`` module only: ``bascule.error``
(server events, app crashes, bad requests) and ``bascule.access`` (one line
per response).  Configure them like any logger.
"""

import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bascule.config import Config

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

error_log = logging.getLogger("bascule.error")
access_log = logging.getLogger("bascule.access")

ACCESS_FORMAT = '%s - "%s %s HTTP/%s" %d %d %.2fms'
"""client, method, path?query, HTTP version, status, response body bytes, duration."""

REJECTED_FORMAT = '%s - "-" %d %d -'
"""A request answered before it could be read (400, 408, 413, 414, 431, 426, 505)."""


def configure(level: str, access: bool) -> None:
    """Default set-up: both loggers to stderr, unless the user configured them."""
    numeric = TRACE if level == "trace" else getattr(logging, level.upper())
    for logger, enabled in ((error_log, True), (access_log, access)):
        if not logger.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(
                logging.Formatter("%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
            )
            logger.addHandler(handler)
            logger.propagate = False
        logger.setLevel(numeric if logger is error_log else logging.INFO)
        logger.disabled = not enabled


def configure_logging(config: "Config") -> None:
    """Set up logging for one process from the options (level, access log)."""
    configure(config.log_level.value, config.access_log)


def request_target(scope: dict[str, Any]) -> str:
    """``path?query`` as the client sent it, for log lines."""
    qs = scope["query_string"]
    target: str = scope["raw_path"].decode("latin-1")
    return target + "?" + qs.decode("latin-1") if qs else target


def log_request(
    client: str, method: str, scope: dict[str, Any], status: int, sent: int, duration_ms: float
) -> None:
    """The access line of one answered request (callers check ``access_log.isEnabledFor``)."""
    access_log.info(
        ACCESS_FORMAT,
        client,
        method,
        request_target(scope),
        scope["http_version"],
        status,
        sent,
        duration_ms,
    )


def log_rejected(client: str, status: int, sent: int) -> None:
    """The access line of a request answered before it could be read."""
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(REJECTED_FORMAT, client, status, sent)
