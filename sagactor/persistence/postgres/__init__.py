"""The PostgreSQL journal (the ``postgres`` extra: ``pip install 'sagactor[postgres]'``)."""

from .journal import PostgresJournal
from .schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION", "PostgresJournal"]
