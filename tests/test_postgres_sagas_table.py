"""The ``sagas`` table on PostgreSQL: the same rows as SQLite's for the same sagas, kept in
the group's transaction, listed and pruned; a version-1 journal is upgraded and backfilled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

import sagactor as sa
from sagactor.persistence.journal import Journal
from sagactor.persistence.postgres import SCHEMA_VERSION
from sagactor.persistence.summaries import SagaQuery

from .opsdomain import ORDER, WAIT, Order, participants


def run_some(rt: sa.Runtime) -> None:
    assert rt.start(ORDER, Order("a", 5), saga_id="41").result(WAIT).ok
    failed = rt.start(ORDER, Order("b", 7, fail_at="charge"), saga_id="42").result(WAIT)
    assert failed.status == "compensated"


def rows_of(journal: Journal) -> dict[str, tuple[Any, ...]]:
    return {
        r.id: (r.type, r.version, r.mode, r.status, r.step, r.reason, r.input, r.result, r.events)
        for r in journal.sagas(SagaQuery(limit=1000))
    }


def test_postgres_keeps_the_rows_sqlite_keeps(pg_url: str, tmp_path: Path) -> None:
    with sa.Runtime.open(tmp_path / "j.db", participants=participants(), sagas=[ORDER]) as rt:
        run_some(rt)
        expected = rows_of(rt.journal)
    with sa.Runtime.open(pg_url, participants=participants(), sagas=[ORDER]) as rt:
        run_some(rt)
        assert rows_of(rt.journal) == expected
        assert rt.counts() == {"completed": 1, "compensated": 1}
        assert [r.id for r in rt.list("compensated").rows] == ["42"]
        page = rt.list(limit=1)
        assert [r.id for r in rt.list(limit=1, after=page.cursor).rows] == ["41"]
        report = rt.prune(keep=1)
        assert report.sagas == 1
        assert rt.journal.read("saga/41") == []
        row = rt.journal.saga_row("41")
        assert row is not None
        assert row.events == 0
    with psycopg.connect(pg_url) as conn:  # plain SQL answers too
        found = conn.execute("SELECT status, reason FROM sagactor.sagas WHERE id = '42'")
        assert found.fetchone() == ("compensated", "step 'charge' failed: charge refused b")
        failed = conn.execute(  # each event's payload is jsonb
            "SELECT payload ->> 'step', payload ->> 'reason' FROM sagactor.saga_events "
            "WHERE saga_id = '42' AND type = 'StepFailed'"
        )
        assert failed.fetchone() == ("charge", "charge refused b")
        shipped = conn.execute(
            "SELECT payload -> 'result' FROM sagactor.saga_events WHERE saga_id = '42' "
            "AND type = 'StepSucceeded' AND payload @> '{\"step\": \"ship\"}'"
        )
        assert shipped.fetchone() == ("parcel-b",)


def test_a_version_1_journal_is_upgraded_and_backfilled(pg_url: str) -> None:
    with sa.Runtime.open(pg_url, participants=participants(), sagas=[ORDER]) as rt:
        run_some(rt)
        before = rows_of(rt.journal)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE sagactor.sagas, sagactor.leases, sagactor.starts")
        conn.execute("UPDATE sagactor.meta SET value = '1' WHERE key = 'schema_version'")
    with sa.Runtime.open(pg_url, participants=participants(), sagas=[ORDER]) as rt:
        assert rows_of(rt.journal) == before
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SELECT value FROM sagactor.meta WHERE key = 'schema_version'")
        assert version.fetchone() == (str(SCHEMA_VERSION),)


def test_a_fork_part_way_on_postgres(pg_url: str) -> None:
    with sa.Runtime.open(pg_url, participants=participants(), sagas=[ORDER]) as rt:
        assert rt.start(ORDER, Order("a", 5), saga_id="41").result(WAIT).ok
        outcome = rt.restart("41", from_step="charge").result(WAIT)
        assert outcome.ok
        assert outcome.results == {"reserve": 5, "ship": "parcel-a", "charge": 5}
        assert rt.state("ledger").held == {"41/reserve": 5, "41/charge": 5, "41~1/charge": 5}
    with psycopg.connect(pg_url) as conn:
        started = conn.execute(
            "SELECT payload ->> 'origin', payload ->> 'from_step', payload -> 'carried' "
            "FROM sagactor.saga_events WHERE saga_id = '41~1' AND seq = 1"
        )
        assert started.fetchone() == ("41", "charge", {"reserve": 5, "ship": "parcel-a"})
