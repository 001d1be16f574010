"""``--reload``: watch source files with watchfiles and tell the supervisor what changed.

The watcher runs in a small child process of the supervisor (forked, never
importing the app), so the supervisor itself stays single-threaded and can
keep forking workers safely.  The watcher writes the changed paths to a pipe,
one batch per write (paths separated by newlines, the batch ended by a NUL);
the supervisor reads the pipe in its event loop and restarts the worker.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from bascule.config import Config
from bascule.errors import ConfigError
from bascule.logs import error_log

#: Files whose change triggers a reload when no ``--reload-include`` is given.
DEFAULT_INCLUDE = ("*.py",)
#: Always ignored unless overridden: hidden files and directories (.git, .venv,
#: editor swap files), compiled Python, editor backups.
DEFAULT_EXCLUDE = (".*", "*.py[cod]", "*~")

#: How long (ms) watchfiles waits for the supervisor check between changes;
#: the watcher exits within this time once the supervisor is gone.
_POLL_MS = 500


class ReloadFilter:
    """Decide whether a changed path should restart the worker.

    A glob without ``/`` is matched against the file name; an exclude glob
    without ``/`` is also matched against every directory name between the
    watched directory and the file (so ``.*`` skips ``.git/``).  A glob with a
    ``/`` is matched against the path relative to the watched directory.
    """

    def __init__(self, roots: Sequence[str], include: Sequence[str], exclude: Sequence[str]):
        self.roots = [PurePath(root) for root in roots]
        self.include = tuple(include) or DEFAULT_INCLUDE
        self.exclude = tuple(exclude) or DEFAULT_EXCLUDE

    def _relative(self, path: PurePath) -> PurePath:
        for root in self.roots:
            if path.is_relative_to(root):
                return path.relative_to(root)
        return PurePath(path.name)

    @staticmethod
    def _matches(globs: Iterable[str], relative: PurePath, names: Sequence[str]) -> bool:
        text = relative.as_posix()
        for glob in globs:
            if "/" in glob:
                if fnmatch.fnmatch(text, glob):
                    return True
            elif any(fnmatch.fnmatch(name, glob) for name in names):
                return True
        return False

    def __call__(self, change: Any, path: str) -> bool:
        relative = self._relative(PurePath(path))
        parts = relative.parts
        if not parts:
            return False
        if self._matches(self.exclude, relative, parts):
            return False
        return self._matches(self.include, relative, parts[-1:])


def watch_dirs(config: Config) -> list[str]:
    """The absolute directories ``--reload`` watches (default: the current one)."""
    dirs = [os.path.abspath(d) for d in config.reload_dir] or [os.getcwd()]
    for directory in dirs:
        if not os.path.isdir(directory):
            raise ConfigError(f"--reload-dir: {directory} is not a directory")
    return dirs


@dataclass
class Watcher:
    """The watcher child process and the read end of its pipe."""

    pid: int
    fd: int


def start_watcher(config: Config, close_in_child: Sequence[int]) -> Watcher:
    """Fork the watcher process; ``close_in_child``: the supervisor's own fds."""
    try:
        import watchfiles  # noqa: PLC0415 - optional dependency, needed only with --reload
    except ImportError:
        raise ConfigError("--reload needs watchfiles (pip install 'bascule[reload]')") from None
    dirs = watch_dirs(config)
    filt = ReloadFilter(dirs, config.reload_include, config.reload_exclude)
    parent = os.getpid()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child (the tests see it through the pipe)
        status = 1
        try:
            os.close(read_end)
            for fd in close_in_child:
                with contextlib.suppress(OSError):
                    os.close(fd)
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGINT):
                signal.signal(sig, signal.SIG_IGN)
            for sig in (signal.SIGTERM, signal.SIGCHLD):
                signal.signal(sig, signal.SIG_DFL)
            status = _watch(watchfiles, dirs, filt, write_end, parent)
        except BaseException:
            error_log.exception("file watcher crashed")
        finally:
            sys.stderr.flush()
            os._exit(status)
    os.close(write_end)
    error_log.info(
        "watching %s for changes (%s; ignoring %s)",
        ", ".join(dirs),
        " ".join(filt.include),
        " ".join(filt.exclude),
    )
    return Watcher(pid, read_end)


def _watch(watchfiles: Any, dirs: list[str], filt: ReloadFilter, out: int, parent: int) -> int:
    for changes in watchfiles.watch(
        *dirs,
        watch_filter=filt,
        yield_on_timeout=True,
        rust_timeout=_POLL_MS,
        raise_interrupt=False,
    ):
        if os.getppid() != parent:
            return 0  # the supervisor is gone
        if changes:
            paths = sorted({path for _change, path in changes})
            try:
                os.write(out, ("\n".join(paths) + "\0").encode("utf-8", "surrogateescape"))
            except BrokenPipeError:
                return 0
    return 0


def parse_changes(data: bytes) -> list[str]:
    """The changed paths of one or more batches read from the watcher's pipe."""
    text = data.decode("utf-8", "replace")
    return sorted({p for p in text.replace("\0", "\n").split("\n") if p})
