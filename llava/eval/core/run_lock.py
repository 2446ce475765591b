"""One run at a time per output file: an OS lock held for the whole run, which says who holds it.

Two runs appending to one answers file leave duplicates, or answers made with two settings in one file. So a
run takes `<file>.lock` with `flock` before it reads or writes the file, and a second run is refused with
the holder's pid, host, start time and command. The kernel drops the lock when its process dies, however
it dies, so a killed run never blocks the next one; the holder removes the lock file when it is done.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator, Sequence

LOCK_SUFFIX = ".lock"
_COMMAND_SHOWN = 300  # characters of the holder's command line shown in the refusal


class FileInUseError(ValueError):
    """Another run holds the lock of an output file; the message names that run."""


def lock_path(path: str) -> str:
    return path + LOCK_SUFFIX


def _holder_record() -> bytes:
    return json.dumps({
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join(sys.argv),
    }).encode("utf-8")


def _describe_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 1 << 16, 0))
        command = holder["command"]
        if len(command) > _COMMAND_SHOWN:
            command = command[:_COMMAND_SHOWN] + "..."
        return f"pid {holder['pid']} on {holder['host']}, started {holder['started']}: {command}"
    except (OSError, ValueError, KeyError, TypeError):  # the holder has not written its record yet
        return "a run that is just starting"


def _is_current(fd: int, path: str) -> bool:
    """Whether `fd` is still the file at `path`: a holder that finishes removes its lock file, and a run that
    opened it just before must not take that orphan for the lock."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


class RunLock:
    """The lock on `path` (held from construction to `release`); `FileInUseError` if another run holds it."""

    def __init__(self, path: str):
        self.path = path
        self.lock_file = lock_path(path)
        self._fd = self._acquire()

    def _acquire(self) -> int:
        while True:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _describe_holder(fd) if exc.errno in (errno.EAGAIN, errno.EACCES) else None
                os.close(fd)
                if holder is None:
                    raise
                raise FileInUseError(
                    f"{self.path} is being written by another run ({holder}); wait for it to end or stop it, "
                    "or write to another file") from None
            if _is_current(fd, self.lock_file):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, _holder_record(), 0)
        return fd

    def release(self) -> None:
        if self._fd is None:
            return
        # Removed while still held: a run that opened it meanwhile sees it is no longer current and starts over.
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.lock_file)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


@contextlib.contextmanager
def all_locked(paths: Sequence[str]) -> Iterator[None]:
    """Hold the locks of every path in `paths` (all or none)."""
    with contextlib.ExitStack() as stack:
        for path in paths:
            stack.enter_context(RunLock(path))
        yield
