"""The journal contract, unchanged, on PostgreSQL: both durability settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagactor.persistence.journal import Journal
from sagactor.persistence.postgres import PostgresJournal
from sagactor.testing.journal_contract import JournalContract


class _OnPostgres(JournalContract):
    synchronous = "full"

    @pytest.fixture(autouse=True)
    def _database(self, pg_url: str) -> None:
        self.url = pg_url

    def make_journal(self, tmp_path: Path) -> Journal:
        return PostgresJournal(self.url, synchronous=self.synchronous)  # type: ignore[arg-type]


class TestPostgresJournalFull(_OnPostgres):
    synchronous = "full"


class TestPostgresJournalNormal(_OnPostgres):
    synchronous = "normal"
