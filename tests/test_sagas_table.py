"""The ``sagas`` table: one summary row per saga, kept in the transaction of its events, read
with plain SQL (Python's sqlite3 module only), equal in memory and in SQLite, backfilled when an
older journal is opened."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import sagactor as sa
from sagactor.persistence.journal import Journal
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SCHEMA_VERSION
from sagactor.persistence.summaries import SagaQuery

from .opsdomain import ORDER, WAIT, Courier, Order, participants


@pytest.fixture(autouse=True)
def courier_works() -> Iterator[None]:
    Courier.broken = False
    yield
    Courier.broken = False


def run_some(rt: sa.Runtime) -> None:
    assert rt.start(ORDER, Order("a", 5), saga_id="41").result(WAIT).ok
    failed = rt.start(ORDER, Order("b", 7, fail_at="charge"), saga_id="42").result(WAIT)
    assert failed.status == "compensated"


def test_what_happened_to_saga_42_in_plain_sql(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    with sa.Runtime.open(path, participants=participants(), sagas=[ORDER]) as rt:
        run_some(rt)
    conn = sqlite3.connect(path)
    row = conn.execute(
        "SELECT type, status, step, reason, json_extract(input, '$.amount'), result, events "
        "FROM sagas WHERE id = '42'"
    ).fetchone()
    assert row == (
        "order",
        "compensated",
        "reserve",  # the last compensation sent
        "step 'charge' failed: charge refused b",
        7,
        '{"reserve":7,"ship":"parcel-b"}',
        row[-1],
    )
    events = [t for (t,) in conn.execute("SELECT type FROM saga_events WHERE saga_id = '42'")]
    assert events[0] == "SagaStarted"
    assert events[-1] == "SagaCompensated"
    assert "StepFailed" in events
    assert events.count("StepCompensated") == 2
    assert row[-1] == len(events)
    # Every event has its JSON, those stored several to a row (one append) included.
    packed = conn.execute("SELECT count(*) FROM events WHERE type LIKE '[%'").fetchone()[0]
    assert packed > 0
    assert conn.execute("SELECT count(*) FROM saga_events WHERE payload IS NULL").fetchone() == (0,)
    # Each event's payload is JSON: its fields, and the results the steps returned.
    failed = conn.execute(
        "SELECT json_extract(payload, '$.step'), json_extract(payload, '$.reason'), "
        "json_extract(payload, '$.business') FROM saga_events "
        "WHERE saga_id = '42' AND type = 'StepFailed'"
    ).fetchone()
    assert failed == ("charge", "charge refused b", 1)
    shipped = conn.execute(
        "SELECT payload ->> '$.result' FROM saga_events "
        "WHERE saga_id = '42' AND payload ->> '$.step' = 'ship' AND type = 'StepSucceeded'"
    ).fetchone()
    assert shipped == ("parcel-b",)
    undone = conn.execute(
        "SELECT group_concat(payload ->> '$.step', ' then ') FROM saga_events "
        "WHERE saga_id = '42' AND type = 'StepCompensated' ORDER BY seq"
    ).fetchone()
    assert undone == ("ship then reserve",)
    amount = conn.execute(
        "SELECT payload -> '$.input.amount' FROM saga_events WHERE saga_id = '42' AND seq = 1"
    ).fetchone()
    assert amount == ("7",)
    done = conn.execute("SELECT status, json(result) FROM saga_summaries WHERE id = '41'")
    status, result = done.fetchone()
    assert status == "completed"
    assert json.loads(result) == {"reserve": 5, "ship": "parcel-a", "charge": 5}
    started, ended = conn.execute("SELECT started, ended FROM sagas WHERE id = '41'").fetchone()
    assert 0 < started <= ended
    conn.close()


def rows_of(journal: Journal) -> dict[str, tuple[object, ...]]:
    """The rows without their times (which differ from run to run)."""
    return {
        r.id: (r.type, r.version, r.mode, r.status, r.step, r.reason, r.input, r.result, r.events)
        for r in journal.sagas(SagaQuery(limit=1000))
    }


def test_memory_and_sqlite_keep_the_same_rows(tmp_path: Path) -> None:
    memory = MemoryJournal()
    with sa.Runtime(memory, participants=participants(), sagas=[ORDER]) as rt:
        run_some(rt)
    with sa.Runtime.open(tmp_path / "j.db", participants=participants(), sagas=[ORDER]) as rt:
        run_some(rt)
        stored = rows_of(rt.journal)
    assert stored == rows_of(memory)
    assert set(stored) == {"41", "42"}
    # And the fallback of the contract (a fold of every saga stream) says the same.
    assert rows_of_fallback(memory) == stored


def rows_of_fallback(journal: MemoryJournal) -> dict[str, tuple[object, ...]]:
    rows = Journal.sagas(journal, SagaQuery(limit=1000))
    return {
        r.id: (r.type, r.version, r.mode, r.status, r.step, r.reason, r.input, r.result, r.events)
        for r in rows
    }


def test_an_older_journal_opens_and_its_table_is_backfilled(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sa.Runtime.open(path, participants=participants(), sagas=[ORDER]) as rt:
        run_some(rt)
        before = rows_of(rt.journal)
        times = {r.id: (r.started, r.ended) for r in rt.journal.sagas(SagaQuery())}
    conn = sqlite3.connect(path)  # what sagactor wrote with schema version 2
    conn.execute("DROP VIEW saga_events")
    conn.execute("DROP VIEW saga_summaries")
    conn.execute("DROP TABLE sagas")
    conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with sa.Runtime.open(path, participants=participants(), sagas=[ORDER]) as rt:
        assert rows_of(rt.journal) == before
        assert {r.id: (r.started, r.ended) for r in rt.journal.sagas(SagaQuery())} == times
        assert rt.start(ORDER, Order("c", 1), saga_id="43").result(WAIT).ok
        assert rt.journal.saga_row("43") is not None
    conn = sqlite3.connect(path)
    version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    assert version == SCHEMA_VERSION == 4
    assert conn.execute("SELECT count(*) FROM sagas").fetchone()[0] == 3
    # The view reads each saga's events as JSON (its first one: the start).
    payloads = dict(
        conn.execute(
            "SELECT saga_id, json_extract(payload, '$.saga') FROM saga_events WHERE seq = 1"
        )
    )
    assert payloads == {"41": "order", "42": "order", "43": "order"}
    conn.close()


def test_a_version_3_journal_gets_the_payload_column(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    with sa.Runtime.open(path, participants=participants(), sagas=[ORDER]) as rt:
        run_some(rt)
    conn = sqlite3.connect(path)  # what sagactor wrote with schema version 3: no payload
    conn.execute("DROP VIEW saga_events")
    conn.execute(
        "CREATE VIEW saga_events AS SELECT substr(stream, 6) AS saga_id, seq, type, ts, cause, "
        "final, position FROM events WHERE stream >= 'saga/' AND stream < 'saga0'"
    )
    conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with sa.Runtime.open(path, participants=participants(), sagas=[ORDER]) as rt:
        assert rt.status("42").status == "compensated"
    conn = sqlite3.connect(path)
    reason = conn.execute(
        "SELECT payload ->> '$.reason' FROM saga_events "
        "WHERE saga_id = '42' AND type = 'StepFailed'"
    ).fetchone()
    assert reason == ("charge refused b",)
    conn.close()


def test_a_cancelled_saga_shows_cancelled_and_a_stuck_one_stuck(tmp_path: Path) -> None:
    Courier.broken = True
    with sa.Runtime.open(tmp_path / "j.db", participants=participants(), sagas=[ORDER]) as rt:
        stuck = rt.start(ORDER, Order("s", 1, fail_at="charge"), saga_id="s").result(WAIT)
        assert stuck.status == "stuck"
        row = rt.journal.saga_row("s")
        assert row is not None
        assert row.status == "stuck"
        assert row.ended is not None
        assert "courier's line is down" in row.reason
        assert row.step == "ship"
    # A journal reopened mid-stream: the writer reads the saga again before its next row.
    Courier.broken = False
    with sa.Runtime.open(tmp_path / "j.db", participants=participants(), sagas=[ORDER]) as rt:
        rt.resume("s")
        assert rt.run("s").result(WAIT).status == "compensated"
        row = rt.journal.saga_row("s")
        assert row is not None
        assert row.status == "compensated"
        assert row.events == rt.journal.last_seq("saga/s")
    memory = MemoryJournal()
    with sa.Runtime(memory, participants=participants(), sagas=[ORDER]) as rt:
        rt.cancel(rt.start(ORDER, Order("c", 1), saga_id="c").id, "customer changed mind")
        outcome = rt.run("c").result(WAIT)
    row = memory.saga_row("c")
    assert row is not None
    if outcome.status == "compensated":  # a cancel may come after the end: then it completed
        assert row.status == "cancelled"
        assert row.reason == "customer changed mind"
    else:
        assert row.status == "completed"
