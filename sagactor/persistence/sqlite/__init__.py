"""The SQLite journal (see :class:`SqliteJournal`): :mod:`.schema` knows the file's format,
:mod:`.writer` the single writer thread and its group commit, :mod:`.reader` the reads, and
:mod:`.journal` puts them together."""

from .journal import SqliteJournal
from .schema import APPLICATION_ID, SCHEMA_VERSION

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteJournal"]
