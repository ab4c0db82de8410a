"""The journal file's neighbours: the ``.lock`` file that keeps a second writer out, and the
side files (``-wal``, ``-shm``, ``.lock``) a refused open must not leave behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Final

from sagactor.errors import JournalError, JournalLocked

__all__ = ["SIDE_FILES", "acquire_lock", "missing_side_files", "remove_side_files"]

SIDE_FILES: Final = ("-wal", "-shm", ".lock")


def missing_side_files(path: str) -> list[str]:
    """The side files of ``path`` that do not exist yet: the only ones an open may remove."""
    return [f"{path}{suffix}" for suffix in SIDE_FILES if not os.path.lexists(path + suffix)]


def remove_side_files(names: list[str]) -> None:
    """Delete ``names`` (side files this journal created); a lock file only while unheld."""
    for name in names:
        if name.endswith(".lock"):
            _remove_lock(name)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(name)


def acquire_lock(path: str) -> int:
    """Hold ``<path>.lock`` exclusively; the OS drops the lock when the process dies.

    A lock file may be removed by its holder (:func:`_remove_lock`): a lock taken on a file
    that is no longer at its path is let go, and taken again on the one there now.
    """
    name = f"{path}.lock"
    while True:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise JournalError(f"journal {path!r}: cannot create its lock file: {error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, name):
                return fd
        except BlockingIOError:
            os.close(fd)
            raise JournalLocked(path) from None
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _remove_lock(name: str) -> None:
    """Delete a lock file, holding its lock meanwhile (else leave it: someone holds it)."""
    try:
        fd = os.open(name, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, name):
            os.remove(name)
    except OSError:
        pass  # held by another journal, or already gone: not ours to remove
    finally:
        os.close(fd)


def _same_file(fd: int, name: str) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(name))
    except FileNotFoundError:
        return False
