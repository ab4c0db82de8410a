"""Which journal a path names: a SQLite file, or PostgreSQL at a ``postgresql://`` URL; and
what a refused open leaves behind (nothing)."""

from __future__ import annotations

import os
import sqlite3
from typing import Literal

import msgspec

from ..errors import JournalCorrupt, JournalError
from .journal import Journal

__all__ = ["discard", "open_journal"]


def open_journal(
    path: str | os.PathLike[str], *, synchronous: Literal["full", "normal"], create: bool
) -> Journal:
    """The SQLite journal at a path, or the PostgreSQL journal at a ``postgresql://`` URL."""
    if isinstance(path, str) and path.lower().startswith(("postgresql://", "postgres://")):
        try:
            from .postgres import PostgresJournal  # psycopg is an extra
        except ImportError as error:
            raise JournalError(
                f"a PostgreSQL journal needs psycopg: pip install 'sagactor[postgres]' ({error})"
            ) from error
        return PostgresJournal(path, synchronous=synchronous, create=create)
    from .sqlite import SqliteJournal

    if not create and not (os.path.isfile(path) and os.path.getsize(path) > 0):
        raise JournalError(f"journal {os.fspath(path)!r} does not exist (create=False)")
    return SqliteJournal(path, synchronous=synchronous)


def discard(journal: Journal, error: BaseException) -> BaseException:
    """Close a journal whose runtime refused to start; the error to raise instead."""
    from .sqlite import SqliteJournal

    journal.close()
    if isinstance(journal, SqliteJournal):
        journal.remove_side_files()  # a refused file is left as it was found
    if isinstance(error, sqlite3.Error | msgspec.MsgspecError):  # a backstop: none should
        return JournalCorrupt(journal.path, f"cannot be read: {error!r}")
    return error
