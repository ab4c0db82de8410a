"""Which journal a path names: a SQLite file, or PostgreSQL at a ``postgresql://`` URL; and
what a refused open leaves behind (nothing)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from typing import Literal

import msgspec

from ..errors import JournalCorrupt, JournalError
from .journal import Journal

__all__ = ["discard", "discarding", "open_journal"]


def open_journal(
    path: str | os.PathLike[str],
    *,
    synchronous: Literal["full", "normal"],
    create: bool,
    standby: bool = False,
    lease: float = 10.0,
) -> Journal:
    """The SQLite journal at a path, or the PostgreSQL journal at a ``postgresql://`` URL
    (``standby`` and ``lease``: see ``Runtime.open``; a SQLite file has one runtime)."""
    if isinstance(path, str) and path.lower().startswith(("postgresql://", "postgres://")):
        try:
            from .postgres import PostgresJournal  # psycopg is an extra
        except ImportError as error:
            raise JournalError(
                f"a PostgreSQL journal needs psycopg: pip install 'sagactor[postgres]' ({error})"
            ) from error
        return PostgresJournal(
            path, synchronous=synchronous, create=create, standby=standby, lease=lease
        )
    from .sqlite import SqliteJournal

    if not create and not (os.path.isfile(path) and os.path.getsize(path) > 0):
        raise JournalError(f"journal {os.fspath(path)!r} does not exist (create=False)")
    return SqliteJournal(path, synchronous=synchronous)


@contextlib.contextmanager
def discarding(journal: Journal) -> Iterator[None]:
    """Around a runtime's start on ``journal``: if it fails, the journal is discarded."""
    try:
        yield
    except BaseException as error:
        problem = discard(journal, error)
        if problem is error:
            raise
        raise problem from error


def discard(journal: Journal, error: BaseException) -> BaseException:
    """Close a journal whose runtime refused to start; the error to raise instead."""
    from .sqlite import SqliteJournal

    journal.close()
    if isinstance(journal, SqliteJournal):
        journal.remove_side_files()  # a refused file is left as it was found
    if isinstance(error, sqlite3.Error | msgspec.MsgspecError):  # a backstop: none should
        return JournalCorrupt(journal.path, f"cannot be read: {error!r}")
    return error
