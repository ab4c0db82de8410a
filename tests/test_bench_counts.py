"""The bench's per-saga counts, pinned; and the bench harness, run end to end at a tiny size.

The counts are today's engine's exact figures for one 4-step saga alone (issue 11's lean
engine changes them on purpose: update these numbers in the commit that does, so the change
shows). They come from the runtime's message counter and the journal, not from a clock.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import bench_dbos, counts, report, run

# One saga alone: 1 start + 4 commands + 4 replies + SagaEnded to 4 participants = 13 messages;
# 9 appends (the saga's start and its 4 decisions, each participant's 1 handled command), two
# records each, one row each: 9 rows (18 before one row per append). 6 of the appends are
# waited for (the start, the 4 participants' inbox records, the end): the 3 decisions "step
# succeeded, start the next" act
# before their commit (sagactor.actors.recomputable), so a saga alone waits for 6 sequential
# commits; the SQLite writer holds each deferred decision back a moment for the participant's
# record it causes, so alone it makes 6 commits, not 8 (tests/test_unawaited_appends.py).
TODAY = {"messages": 13.0, "appends": 9.0, "waits": 6.0, "rows": 9.0}


@pytest.mark.parametrize("durable", [True, False], ids=["sqlite", "memory"])
def test_one_saga_alone_costs_todays_counts(durable: bool) -> None:
    found = counts.per_saga(durable, in_flight=1, sagas=3)
    assert {key: getattr(found, key) for key in TODAY} == TODAY
    if durable:
        assert found.waits <= found.commits <= found.appends
    else:
        assert found.commits == 0.0


def test_counts_per_saga_do_not_depend_on_how_many_are_in_flight() -> None:
    """Messages, appends and rows are the saga's own; only commits share groups."""
    alone = counts.per_saga(True, in_flight=1, sagas=2)
    crowded = counts.per_saga(True, in_flight=20, sagas=40)
    assert (crowded.messages, crowded.appends, crowded.waits, crowded.rows) == (
        alone.messages,
        alone.appends,
        alone.waits,
        alone.rows,
    )
    assert crowded.commits < alone.commits  # group commit at work


def test_a_row_says_meet_or_miss_against_its_target() -> None:
    ratio = report.Target("ratio", at_least=True, bound=60)
    assert report.Row("x", 600.0, "sagas/s", "DBOS", 10.0, ratio).verdict == "MEET"
    assert report.Row("x", 500.0, "sagas/s", "DBOS", 10.0, ratio).verdict == "MISS"
    assert report.Row("x", 500.0, "sagas/s", "DBOS", None, ratio).verdict == "n/a"
    ceiling = report.Target("figure", at_least=False, bound=1.5)
    assert report.Row("p50", 1.4, "ms", target=ceiling).verdict == "MEET"
    assert report.Row("p50", 4.0, "ms", target=ceiling).verdict == "MISS"
    quick = report.Target("figure", at_least=False, bound=0.2, applies=False)
    assert report.Row("reopen", 0.01, "s", target=quick).verdict == "n/a"


def test_the_harness_prints_every_row_without_dbos() -> None:
    tiny = run.Sizes(
        seconds=0.05,
        latency_samples=10,
        recovery=30,
        in_flight_held=30,
        rss_total=100,
        counts=((1, 2), (5, 10)),
        fsync_sagas=0,
        full=False,
    )
    said: list[str] = []
    found: dict[str, Any] = run.measure(tiny, with_dbos=False, quick=True, say=said.append)
    printed = report.table(found["rows"])
    for label in (
        "durable FULL, 1 in flight",
        "durable FULL, 100 in flight",
        "one saga at a time, p50",
        "in memory, 100 in flight",
        "raw sqlite3",
        "recovery of 30 in flight: reopen",
        "memory per in-flight saga",
        "RSS growth",
    ):
        assert label in printed
    dbos_row = found["rows"][2]
    assert dbos_row.baseline == "DBOS skipped"
    assert dbos_row.verdict == "n/a"
    assert all(row.figure is not None for row in found["rows"])
    assert "| SQLite FULL | " in report.counts_table(found["counts"])


def test_without_dbos_installed_the_baseline_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_dbos, "installed", lambda python: False)
    assert bench_dbos.run_child(quick=True) is None
    durable = {"full_1": 100.0, "full_10": 300.0, "full_100": 500.0, "full_100_inline": 600.0,
               "p50_ms": 4.0, "p99_ms": 9.0, "raw_sagas_per_s": 2000.0, "rows_per_saga": 18.0,
               "group_rows": 90.0}  # fmt: skip
    memory = {"memory_1": 1.0, "pykka_1": 2.0, "memory_100": 1.0, "pykka_100": 4.0,
              "memory_100_inline": 1.5}  # fmt: skip
    held = {"reopen_s": 0.5, "finished_s": 9.0, "reopen_blocking_s": 2.0, "in_flight_kb": 4.0,
            "rss_mb_per_100k": 0.5}  # fmt: skip
    rows = run.rows_of(durable, memory, held, None, run.Sizes.pick(quick=False, long=False))
    versus_dbos = [row for row in rows if row.baseline.startswith("DBOS")]
    assert [row.baseline for row in versus_dbos] == ["DBOS not installed"] * 6
    assert {row.verdict for row in versus_dbos} == {"", "n/a", "MISS"}  # p50 needs no DBOS
    assert "DBOS not installed" in report.table(rows)
