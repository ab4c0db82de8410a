"""The journal contract, run against every backend sagactor ships."""

from __future__ import annotations

from pathlib import Path

from sagactor.persistence.journal import Journal
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal
from sagactor.testing.journal_contract import JournalContract


class TestMemoryJournal(JournalContract):
    def make_journal(self, tmp_path: Path) -> Journal:
        return MemoryJournal()


class TestSqliteJournalFull(JournalContract):
    def make_journal(self, tmp_path: Path) -> Journal:
        return SqliteJournal(tmp_path / "journal.db")


class TestSqliteJournalNormal(JournalContract):
    def make_journal(self, tmp_path: Path) -> Journal:
        return SqliteJournal(tmp_path / "journal.db", synchronous="normal")


class TestSqliteJournalInMemory(JournalContract):
    def make_journal(self, tmp_path: Path) -> Journal:
        return SqliteJournal(":memory:", durable=False)
