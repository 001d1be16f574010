"""Act like systemd's socket activation, then become ``python -m bascule``.

Usage: ``python systemd_launcher.py FD[=NAME] ... -- BASCULE_ARGS...``

The listening sockets at the given fds (passed with ``pass_fds``) are moved to
fds 3, 4, ... as systemd does; ``LISTEN_FDS``, ``LISTEN_PID`` (this process's
id, kept by ``execv``) and ``LISTEN_FDNAMES`` are set; then the process execs
bascule.
"""

import fcntl
import os
import sys

FIRST_FD = 3  # SD_LISTEN_FDS_START
PARK_FROM = 100  # above anything the targets use, so moving fds never clobbers one


def main() -> None:
    split = sys.argv.index("--")
    specs, bascule_args = sys.argv[1:split], sys.argv[split + 1 :]
    fds, names = [], []
    for spec in specs:
        fd_text, _, name = spec.partition("=")
        fds.append(int(fd_text))
        names.append(name)
    parked = [fcntl.fcntl(fd, fcntl.F_DUPFD, PARK_FROM) for fd in fds]
    for fd in fds:
        os.close(fd)
    for index, fd in enumerate(parked):
        os.dup2(fd, FIRST_FD + index, inheritable=True)
        os.close(fd)
    os.environ["LISTEN_FDS"] = str(len(fds))
    os.environ["LISTEN_PID"] = str(os.getpid())
    if any(names):
        os.environ["LISTEN_FDNAMES"] = ":".join(names)
    os.execv(sys.executable, [sys.executable, "-m", "bascule", *bascule_args])


if __name__ == "__main__":
    main()
