"""The journal contract, unchanged, on PostgreSQL: both durability settings.

Each test's journal is a new, empty one in a schema of its own, in a database its class shares
(a database per test cost more than most of these tests).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from sagactor.persistence.journal import Journal
from sagactor.persistence.postgres import PostgresJournal
from sagactor.testing.journal_contract import JournalContract


class _OnPostgres(JournalContract):
    synchronous = "full"
    _schemas = itertools.count()

    @pytest.fixture(autouse=True)
    def _database(self, pg_class_url: str) -> None:
        self.url = pg_class_url
        self.schema = f"contract{next(self._schemas)}"

    def make_journal(self, tmp_path: Path) -> Journal:
        return PostgresJournal(
            self.url,
            synchronous=self.synchronous,  # type: ignore[arg-type]
            schema=self.schema,
        )


class TestPostgresJournalFull(_OnPostgres):
    synchronous = "full"


class TestPostgresJournalNormal(_OnPostgres):
    synchronous = "normal"
