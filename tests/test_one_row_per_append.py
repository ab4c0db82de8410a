"""One stored row per append and stream (schema version 4): what a reader sees is unchanged,
a file of version 3 (one row per record) opens, upgrades and reads the same, and the
``saga_events`` view unnests packed rows for SQL tools."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from sagactor.errors import StreamConflict
from sagactor.persistence.journal import Record
from sagactor.persistence.sqlite import SCHEMA_VERSION, SqliteJournal
from sagactor.testing.journal_contract import record

_V3_VIEW = (
    "CREATE VIEW saga_events AS SELECT substr(stream, 6) AS saga_id, seq, type, "
    "strftime('%Y-%m-%d %H:%M:%f', ts, 'unixepoch') AS at, ts, cause, final, position FROM events "
    "WHERE stream >= 'saga/' AND stream < 'saga0'"
)


def stored_rows(path: Path) -> list[tuple[str, int, str]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT stream, seq, type FROM events ORDER BY position").fetchall()


def caused(stream: str, seq: int, cause: str, final: bool = False) -> Record:
    return Record(stream, seq, f"T{seq}", f"d{seq}".encode(), 1.0 + seq, cause, final)


def test_an_append_is_one_row_and_reads_back_as_its_records(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SqliteJournal(path) as journal:
        journal.append_and_wait([caused("saga/a", 1, "a/x"), caused("saga/a", 2, "a/x")])
        journal.append_and_wait([caused("p/q", 1, "a/x"), caused("p/q", 2, "a/x")])
        journal.append_and_wait([caused("saga/a", 3, "a/y"), caused("saga/a", 4, "a/y", True)])
        records = journal.read_all()
        assert [(r.stream, r.seq, r.type, r.data, r.ts, r.final) for r in records] == [
            ("saga/a", 1, "T1", b"d1", 2.0, False),
            ("saga/a", 2, "T2", b"d2", 3.0, False),
            ("p/q", 1, "T1", b"d1", 2.0, False),
            ("p/q", 2, "T2", b"d2", 3.0, False),
            ("saga/a", 3, "T3", b"d3", 4.0, False),
            ("saga/a", 4, "T4", b"d4", 5.0, True),
        ]
        assert [r.position for r in records] == [1, 2, 3, 4, 5, 6]
        # Reads that start or stop inside a row see only the records they ask for.
        assert [r.seq for r in journal.read("saga/a", after=1, limit=2)] == [2, 3]
        assert [r.position for r in journal.read_all(after=3, limit=1)] == [4]
        assert [r.position for r in journal.read_caused("a", after=1)] == [2, 3, 4, 5, 6]
        assert journal.latest(["saga/a", "p/q"])["saga/a"].seq == 4
        assert journal.open_streams("") == ["p/q"]
        # A batch that does not continue a packed stream is refused, as before.
        try:
            journal.append_and_wait([caused("p/q", 2, "a/z")])
        except StreamConflict:
            pass
        else:
            raise AssertionError("a taken seq was accepted")
    assert [(stream, seq) for stream, seq, _ in stored_rows(path)] == [
        ("saga/a", 2),
        ("p/q", 2),
        ("saga/a", 4),
    ]
    with SqliteJournal(path) as again:  # a stream the writer did not see is checked on disk
        try:
            again.append_and_wait([caused("p/q", 1, "b/x"), caused("p/q", 2, "b/x")])
        except StreamConflict:
            pass
        else:
            raise AssertionError("a stream assumed new overwrote a stored one")
        assert [r.seq for r in again.read("p/q")] == [1, 2]


def test_a_version_3_file_opens_upgrades_and_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with SqliteJournal(path) as journal:  # one record per append: the rows version 3 wrote
        for seq in (1, 2, 3):
            journal.append_and_wait([record("saga/old", seq, final=seq == 3)])
        before = journal.read_all()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP VIEW saga_events")
        conn.execute(_V3_VIEW)
        conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")
        conn.commit()
    with SqliteJournal(path) as journal:
        assert journal.read_all() == before
        journal.append_and_wait([caused("saga/new", 1, "n/x"), caused("saga/new", 2, "n/x")])
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            SCHEMA_VERSION,
        )
        events = conn.execute(
            "SELECT saga_id, seq, final, position FROM saga_events ORDER BY position"
        ).fetchall()
    assert events == [("old", 1, 0, 1), ("old", 2, 0, 2), ("old", 3, 1, 3),
                      ("new", 1, 0, 4), ("new", 2, 0, 5)]  # fmt: skip
    assert len(stored_rows(path)) == 4
