"""What the PostgreSQL journal adds to the contract: group commit, the single-writer lock, the
checks made at open (no journal, a foreign or newer one, versions and migrations), refused
values, a lost connection, and messages that never show a password."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence

import psycopg
import pytest

import sagactor as sa
from sagactor.errors import StreamConflict
from sagactor.persistence.journal import DoneCallback, Record
from sagactor.persistence.postgres import SCHEMA_VERSION, PostgresJournal, schema
from sagactor.persistence.postgres.urls import redact
from sagactor.testing.journal_contract import record

from .pg import Cluster

WAIT = 30.0


@pytest.fixture
def journal(pg_url: str) -> Iterator[PostgresJournal]:
    journal = PostgresJournal(pg_url)
    yield journal
    journal.fault = None
    journal.close()


def _sql(url: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(statement)
        return cursor.fetchall() if cursor.description else []


def _tables(url: str, in_schema: str = "sagactor") -> set[str]:
    rows = _sql(
        url,
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{in_schema}'",
    )
    return {str(name) for (name,) in rows}


class Gate:
    """A fault hook that holds the writer inside its first group until :meth:`open` is called,
    so that appends made meanwhile queue up behind it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._release = threading.Event()
        self._first = True

    def __call__(self, records: Sequence[Record]) -> None:
        if self._first:
            self._first = False
            self.entered.set()
            assert self._release.wait(WAIT)

    def open(self) -> None:
        self._release.set()


class Results:
    def __init__(self, count: int) -> None:
        self.errors: dict[int, BaseException | None] = {}
        self.order: list[int] = []
        self._count = count
        self._done = threading.Event()
        self._lock = threading.Lock()

    def callback(self, tag: int) -> DoneCallback:
        def done(error: BaseException | None) -> None:
            with self._lock:
                self.errors[tag] = error
                self.order.append(tag)
                if len(self.order) == self._count:
                    self._done.set()

        return done

    def wait(self) -> None:
        assert self._done.wait(WAIT), f"{len(self.order)} of {self._count} answered"


# -- group commit -----------------------------------------------------------------------------


def test_appends_that_arrive_together_share_one_transaction(journal: PostgresJournal) -> None:
    gate = Gate()
    journal.fault = gate
    results = Results(51)
    journal.append([record("first", 1)], results.callback(0))
    assert gate.entered.wait(WAIT)
    for i in range(1, 51):  # queued while the writer is held in the first group
        journal.append([record(f"s{i}", 1), record(f"s{i}", 2)], results.callback(i))
    gate.open()
    results.wait()
    assert results.order == list(range(51))
    assert all(error is None for error in results.errors.values())
    assert journal.commits == 2  # the first group, then the 50 queued batches together
    assert len(journal.read_all()) == 101


def test_a_value_postgresql_refuses_fails_its_batch_alone(journal: PostgresJournal) -> None:
    gate = Gate()
    journal.fault = gate
    results = Results(5)
    journal.append([record("first", 1)], results.callback(0))
    assert gate.entered.wait(WAIT)
    journal.append([record("a", 1)], results.callback(1))
    bad = Record("b", 1, "Evt", b"", 1.0, "cause with a NUL \x00 inside")
    journal.append([bad], results.callback(2))
    journal.append([record("a", 1)], results.callback(3))  # a conflict in the same group
    journal.append([record("c", 1), record("a", 2)], results.callback(4))
    gate.open()
    results.wait()
    assert [results.errors[i] for i in (0, 1, 4)] == [None, None, None]
    assert isinstance(results.errors[2], sa.JournalWriteError)
    assert isinstance(results.errors[3], StreamConflict)
    assert journal.streams("") == ["a", "c", "first"]
    assert [r.seq for r in journal.read("a")] == [1, 2]


# -- one writer ---------------------------------------------------------------------------------


def test_a_second_journal_on_the_same_database_is_refused(pg_url: str) -> None:
    first = PostgresJournal(pg_url)
    try:
        with pytest.raises(sa.JournalLocked, match="already open by another runtime"):
            PostgresJournal(pg_url)
        with pytest.raises(sa.JournalLocked):
            sa.Runtime.open(pg_url)
        first.append_and_wait([record("s", 1)])
    finally:
        first.close()
    second = PostgresJournal(pg_url)  # closed: free again
    second.kill()
    third = PostgresJournal(pg_url)  # killed: free again, at once
    assert [r.seq for r in third.read("s")] == [1]
    third.close()


def test_journals_in_two_schemas_share_a_database(pg_url: str) -> None:
    with (
        PostgresJournal(pg_url, schema="shop") as shop,
        PostgresJournal(pg_url, schema="billing") as billing,
    ):
        shop.append_and_wait([record("saga/1", 1)])
        billing.append_and_wait([record("saga/2", 1)])
        assert shop.streams("") == ["saga/1"]
        assert billing.streams("") == ["saga/2"]
    with pytest.raises(ValueError, match="lower-case SQL name"):
        PostgresJournal(pg_url, schema="shop; DROP TABLE x")


def test_a_lost_writer_connection_is_made_again(journal: PostgresJournal, pg_url: str) -> None:
    journal.append_and_wait([record("s", 1)])
    _kill_writer(pg_url)  # between two groups: none is in doubt, so none fails
    journal.append_and_wait([record("s", 2)])
    assert [r.seq for r in journal.read("s")] == [1, 2]
    # It holds the lock again: nobody else can open the journal.
    with pytest.raises(sa.JournalLocked):
        PostgresJournal(pg_url)


def test_a_connection_lost_before_the_group_is_sent_costs_nothing(
    journal: PostgresJournal, pg_url: str
) -> None:
    gate = Gate()
    journal.fault = gate  # called before the group touches the database
    results = Results(2)
    journal.append([record("s", 1)], results.callback(0))
    assert gate.entered.wait(WAIT)
    journal.append([record("t", 1)], results.callback(1))
    _kill_writer(pg_url)
    gate.open()
    results.wait()
    assert results.errors == {0: None, 1: None}
    assert journal.streams("") == ["s", "t"]


def test_a_connection_lost_after_the_writes_were_sent_fails_that_group(
    journal: PostgresJournal, pg_url: str
) -> None:
    journal.append_and_wait([record("s", 1)])
    results = Results(1)
    with psycopg.connect(pg_url) as blocker:
        # Holds inserts into events back: the group's writes are sent, then wait for the lock.
        blocker.execute("LOCK TABLE sagactor.events IN SHARE MODE")
        journal.append([record("s", 2), record("t", 1)], results.callback(0))
        _wait_for(pg_url, "wait_event_type = 'Lock'")
        _kill_writer(pg_url)
        blocker.rollback()
    results.wait()
    assert isinstance(results.errors[0], sa.JournalWriteError)  # in doubt: failed, and undone
    assert journal.streams("") == ["s"]
    journal.append_and_wait([record("s", 2)])  # the next group connects again
    assert [r.seq for r in journal.read("s")] == [1, 2]


def _wait_for(url: str, condition: str) -> None:
    """Until the journal's writer is in the state ``condition`` says (pg_stat_activity)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sagactor writer' "
        f"AND datname = current_database() AND {condition}"
    )
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(int(WAIT / 0.01)):
            if conn.execute(query).fetchone() == (1,):
                return
            time.sleep(0.01)
    pytest.fail(f"the writer never got to {condition}")


def test_a_writer_that_lost_its_lock_to_another_runtime_writes_nothing(
    journal: PostgresJournal, pg_url: str
) -> None:
    _kill_writer(pg_url)
    with PostgresJournal(pg_url) as other:  # its session is gone: the lease is taken over
        with pytest.raises(sa.JournalFenced, match="another runtime took the journal over"):
            journal.append_and_wait([record("s", 1)])
        other.append_and_wait([record("t", 1)])
    assert journal.streams("") == ["t"]


def _kill_writer(url: str) -> None:
    killed = _sql(
        url,
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
        "WHERE application_name = 'sagactor writer' AND datname = current_database()",
    )
    assert killed == [(True,)]


# -- what an open finds -------------------------------------------------------------------------


def test_create_false_refuses_a_database_without_a_journal(pg_url: str) -> None:
    with pytest.raises(sa.JournalError, match=r"no sagactor journal.*create=True"):
        PostgresJournal(pg_url, create=False)
    with pytest.raises(sa.JournalError, match="no sagactor journal"):
        sa.Runtime.open(pg_url, create=False)
    assert _tables(pg_url) == set()  # refused without leaving anything behind
    PostgresJournal(pg_url).close()
    with PostgresJournal(pg_url, create=False) as journal:
        assert journal.streams("") == []


def test_a_foreign_schema_is_refused_and_left_alone(pg_url: str) -> None:
    _sql(pg_url, "CREATE SCHEMA sagactor")
    _sql(pg_url, "CREATE TABLE sagactor.orders (id int)")
    with pytest.raises(sa.JournalCorrupt, match=r"not a sagactor journal.*orders"):
        PostgresJournal(pg_url)
    assert _tables(pg_url) == {"orders"}
    _sql(pg_url, "CREATE TABLE sagactor.meta (key text, value text)")
    _sql(pg_url, "INSERT INTO sagactor.meta VALUES ('application_id', 'another-app')")
    with pytest.raises(sa.JournalCorrupt, match="not a sagactor journal"):
        PostgresJournal(pg_url)


def test_the_applications_own_tables_do_not_matter(pg_url: str) -> None:
    _sql(pg_url, "CREATE TABLE public.events (id int, what text)")
    _sql(pg_url, "CREATE TABLE public.meta (anything int)")
    with PostgresJournal(pg_url) as journal:
        journal.append_and_wait([record("s", 1)])
    assert _tables(pg_url, "public") == {"events", "meta"}


def test_a_journal_of_a_newer_version_is_refused(pg_url: str) -> None:
    with PostgresJournal(pg_url) as journal:
        journal.append_and_wait([record("s", 1)])
    _sql(pg_url, "UPDATE sagactor.meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(sa.JournalCorrupt, match=r"newer sagactor.*version 99"):
        PostgresJournal(pg_url)
    with pytest.raises(sa.JournalCorrupt, match="newer sagactor"):
        sa.Runtime.open(pg_url)
    assert _sql(pg_url, "SELECT count(*) FROM sagactor.events") == [(1,)]


def test_a_malformed_events_table_is_refused(pg_url: str) -> None:
    PostgresJournal(pg_url).close()
    _sql(pg_url, "DROP VIEW sagactor.saga_events")  # it reads ts: PostgreSQL keeps the type
    _sql(pg_url, "ALTER TABLE sagactor.events ALTER COLUMN ts TYPE text")
    with pytest.raises(sa.JournalCorrupt, match="events table is malformed"):
        PostgresJournal(pg_url)


def test_an_older_version_is_migrated_and_then_refused_by_the_older_code(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PostgresJournal(pg_url) as journal:
        journal.append_and_wait([record("s", 1)])
    # A next version, as a later sagactor may add one.
    later = SCHEMA_VERSION + 1
    migration = ("CREATE TABLE {s}.later (stream text PRIMARY KEY, owner text NOT NULL)",)
    with monkeypatch.context() as patch:
        patch.setattr(schema, "SCHEMA_VERSION", later)
        patch.setitem(schema._MIGRATIONS, later, migration)
        with PostgresJournal(pg_url) as journal:
            assert [r.seq for r in journal.read("s")] == [1]
            journal.append_and_wait([record("s", 2)])
    assert "later" in _tables(pg_url)
    assert _sql(pg_url, "SELECT value FROM sagactor.meta WHERE key = 'schema_version'") == [
        (str(later),)
    ]
    with pytest.raises(sa.JournalCorrupt, match=f"schema version {later}"):
        PostgresJournal(pg_url)


def test_a_database_not_in_utf8_is_refused(pg_cluster: Cluster) -> None:
    url = pg_cluster.create_database(encoding="SQL_ASCII")
    try:
        with pytest.raises(sa.JournalError, match="encoding is SQL_ASCII"):
            PostgresJournal(url)
    finally:
        pg_cluster.drop_database(url)


# -- messages -----------------------------------------------------------------------------------


def test_an_unreachable_server_is_named_without_its_password() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://app:s3cret-pw@127.0.0.1:{port}/shop"
    with pytest.raises(sa.JournalError) as caught:
        sa.Runtime.open(url)
    message = str(caught.value)
    assert f"postgresql://app@127.0.0.1:{port}/shop" in message
    assert "cannot connect" in message
    assert "s3cret" not in message
    assert caught.value.__cause__ is None or "s3cret" not in str(caught.value.__cause__)


def test_a_missing_database_is_a_clear_error(pg_cluster: Cluster) -> None:
    url = pg_cluster.database_url("no_such_database")
    with pytest.raises(sa.JournalError, match='database "no_such_database" does not exist'):
        PostgresJournal(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u@h:5432/db"),
        ("postgres://u:pw@h/db?password=pw&sslmode=off", "postgres://u@h/db?sslmode=off"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("host=h dbname=db password=pw user=u", "host=h dbname=db password=*** user=u"),
        ("host=h password='p w' user=u", "host=h password=*** user=u"),
    ],
)
def test_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_closed_journal_refuses_reads(pg_url: str) -> None:
    journal = PostgresJournal(pg_url)
    journal.close()
    with pytest.raises(sa.RuntimeClosed):
        journal.read("s")
    with pytest.raises(sa.RuntimeClosed):
        journal.append_and_wait([record("s", 1)])
    assert "password" not in repr(journal)
