"""The bench (``make bench``): every figure of issue 11 beside its same-run baseline and target.

``python bench/run.py [--quick] [--long] [--json] [--no-extras]``

- ``--quick``: about a second per throughput row and small sizes (a smoke run; the recovery
  and memory targets then say n/a, their sizes not being the target's);
- ``--long``: RSS over 1,000,000 sagas (default 100,000);
- ``--json``: one JSON document on stdout (the extras' own output goes to stderr);
- ``--no-extras``: skip DBOS and the extra benches (async handlers, footprint, journal,
  sleepers: 100,000 sagas asleep at once).

DBOS runs in a child process with the interpreter named by ``BENCH_DBOS_PYTHON`` (default:
this one); where that lacks the ``bench`` extra the table says "DBOS not installed".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (
    baselines,
    bench_async,
    bench_dbos,
    bench_footprint,
    bench_sleepers,
    counts,
    resources,
    workload,
)
from bench.report import Row, Target, counts_table, table

IN_FLIGHT = (1, 10, 100)


@dataclass(frozen=True, slots=True)
class Sizes:
    seconds: float  # per throughput row
    latency_samples: int
    recovery: int
    in_flight_held: int
    rss_total: int
    counts: tuple[tuple[int, int], ...]  # (in flight, sagas)
    fsync_sagas: int
    full: bool  # sizes are the targets' own

    @classmethod
    def pick(cls, quick: bool, long: bool) -> Sizes:
        if quick:
            return cls(1.0, 100, 1_000, 2_000, 5_000, ((1, 10), (10, 100), (100, 300)), 20, False)
        rss_total = 1_000_000 if long else 100_000
        return cls(
            6.0, 400, 10_000, 10_000, rss_total, ((1, 50), (10, 300), (100, 1000)), 100, True
        )


def _rate(run: Callable[[int, int], float], in_flight: int, seconds: float) -> float:
    """Sagas/s over about ``seconds``, after a probe that sizes the run (and warms up)."""
    probe = max(2 * in_flight, 30)
    total = max(probe, int(run(in_flight, probe) * seconds))
    return run(in_flight, total)


def durable(sizes: Sizes) -> dict[str, Any]:
    """Durable FULL throughput (caller threads), latency, and raw sqlite3 on the same rows."""
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "durable.db"
        with workload.open_durable(path) as rt:
            workload.threads(rt, 10, 100)  # warm-up
            for n in IN_FLIGHT[:-1]:
                found[f"full_{n}"] = _rate(
                    lambda f, t: workload.threads(rt, f, t), n, sizes.seconds
                )
            probe = workload.threads(rt, 100, 200)
            total = max(200, int(probe * sizes.seconds))
            # Table rows (a row holds one append's records of one stream), as raw sqlite3 inserts.
            commits, rows = counts.commits_of(rt.journal), rt.journal.stats.rows
            found["full_100"] = workload.threads(rt, 100, total)
            rows = rt.journal.stats.rows - rows
            found["rows_per_saga"] = rows / total
            found["group_rows"] = rows / max(1, counts.commits_of(rt.journal) - commits)
            found["p50_ms"], found["p99_ms"] = workload.latencies(rt, sizes.latency_samples)
        with workload.open_durable(Path(directory) / "inline.db", inline=True) as rt:
            workload.threads(rt, 10, 100)  # warm-up
            found["full_100_inline"] = _rate(
                lambda f, t: workload.threads(rt, f, t), 100, sizes.seconds
            )
        raw_rows = baselines.raw_sqlite_rows_per_s(path, round(found["group_rows"]))
        found["raw_sagas_per_s"] = raw_rows / found["rows_per_saga"]
    return found


def in_memory(sizes: Sizes) -> dict[str, float]:
    """In-memory throughput beside the bare pykka chain, both driven by one windowed driver."""
    found = {}
    with workload.open_memory() as rt, baselines.BarePykka() as bare:
        for n in (1, 100):
            found[f"memory_{n}"] = _rate(lambda f, t: workload.window(rt, f, t), n, sizes.seconds)
            found[f"pykka_{n}"] = _rate(bare.window, n, sizes.seconds)
    with workload.open_memory(inline=True) as rt:
        found["memory_100_inline"] = _rate(
            lambda f, t: workload.window(rt, f, t), 100, sizes.seconds
        )
    return found


def rows_of(
    d: dict[str, Any],
    m: dict[str, float],
    r: dict[str, Any],
    dbos: dict[str, Any] | None,
    sizes: Sizes,
    dbos_missing: str = "DBOS not installed",
) -> list[Row]:
    rates = (dbos or {}).get("sagas_per_s", {})
    dbos_name = "DBOS" if dbos else dbos_missing
    rows = [
        Row(
            f"durable FULL, {n} in flight",
            d[f"full_{n}"],
            "sagas/s",
            dbos_name,
            rates.get(str(n)),
            Target("ratio", True, 60) if n == 100 else None,
            note=f"{n} caller threads" if n > 1 else "",
        )
        for n in IN_FLIGHT
    ]
    rows += [
        Row("durable FULL, 100 in flight, inline participants", d["full_100_inline"],
            "sagas/s", dbos_name, rates.get("100"), note="100 caller threads"),
        Row("one saga at a time, p50", d["p50_ms"], "ms", dbos_name, (dbos or {}).get("p50_ms"),
            Target("figure", False, 1.5)),
        Row("one saga at a time, p99", d["p99_ms"], "ms", dbos_name, (dbos or {}).get("p99_ms")),
        Row("in memory, 1 in flight", m["memory_1"], "sagas/s", "bare pykka", m["pykka_1"]),
        Row("in memory, 100 in flight", m["memory_100"], "sagas/s", "bare pykka", m["pykka_100"],
            Target("ratio", True, 1.0)),
        Row("in memory, 100 in flight, inline participants", m["memory_100_inline"], "sagas/s",
            "bare pykka", m["pykka_100"]),
        Row("durable FULL, 100 in flight", d["full_100"], "sagas/s",
            "raw sqlite3", d["raw_sagas_per_s"], Target("ratio", True, 0.5),
            note=f"same {d['rows_per_saga']:.0f} rows/saga, {d['group_rows']:.0f}-row groups"),
        Row(f"recovery of {sizes.recovery:,} in flight: reopen", r["reopen_s"], "s",
            target=Target("figure", False, 0.2, applies=sizes.full),
            note='recover="background"'),
        Row(f"recovery of {sizes.recovery:,} in flight: reopen, resumed before it returns",
            r["reopen_blocking_s"], "s"),
        Row(f"recovery of {sizes.recovery:,} in flight: all finished", r["finished_s"], "s",
            target=Target("figure", False, 2.0, applies=sizes.full)),
        Row(f"memory per in-flight saga with its waiter ({sizes.in_flight_held:,} held)",
            r["in_flight_kb"], "KB", target=Target("figure", False, 1.5, applies=sizes.full)),
        Row(f"RSS growth over {sizes.rss_total:,} sagas (second half)", r["rss_mb_per_100k"],
            "MB/100k", target=Target("figure", False, 1.0), note="flat: <= 1 MB per 100k"),
    ]  # fmt: skip
    return rows


def per_saga_counts(sizes: Sizes) -> list[dict[str, Any]]:
    found = []
    for durable_journal in (True, False):
        for in_flight, sagas in sizes.counts:
            figures = counts.per_saga(durable_journal, in_flight, sagas).to_builtins()
            if not durable_journal:
                figures["fsyncs"] = 0.0
            elif sizes.fsync_sagas:
                sagas = max(sizes.fsync_sagas, in_flight)
                figures["fsyncs"] = counts.fsyncs_per_saga(in_flight, sagas)
            else:
                figures["fsyncs"] = None
            found.append(figures)
    return found


def extras(quick: bool, long: bool) -> None:
    """The benches with output of their own: journal (if present), async handlers, footprint."""
    try:
        journal_bench: Any = importlib.import_module("bench.bench_journal")
    except ImportError:
        journal_bench = None
    footprint = (
        ["--sagas", "20000", "--every", "10000"]
        if quick
        else ["--sagas", "50000", "--every", "25000"]
    )
    sections: list[tuple[str, Callable[[], None], list[str]]] = [
        ("async handlers vs sync handlers", bench_async.main, ["--sagas", "300"] if quick else []),
        ("footprint: memory, snapshots, history", bench_footprint.main, [] if long else footprint),
        ("sleepers: asleep at once, reopen", bench_sleepers.main, ["--sagas", "10000"] * quick),
    ]  # fmt: skip
    if journal_bench is not None and hasattr(journal_bench, "main"):
        sections.insert(
            0,
            (
                "journal: appends vs raw sqlite3, reopen",
                journal_bench.main,
                ["--quick"] if quick else [],
            ),
        )
    for title, run, argv in sections:
        print(f"\n=== {title} ===", flush=True)
        saved, sys.argv = sys.argv, [title, *argv]
        try:
            run()
        finally:
            sys.argv = saved


def measure(
    sizes: Sizes, with_dbos: bool, quick: bool, say: Callable[[str], None]
) -> dict[str, Any]:
    """Every figure: the table's rows, the per-saga counts, and the raw numbers behind them."""
    say("measuring: durable...")
    d = durable(sizes)
    say("measuring: in memory vs bare pykka...")
    m = in_memory(sizes)
    say("measuring: recovery, memory (each in a fresh process)...")
    reopen, finished, blocking = resources.in_child("recovery", sizes.recovery)
    rss_growth, _ = resources.in_child("rss", sizes.rss_total)
    held = resources.in_child("in-flight", sizes.in_flight_held)
    r = {
        "reopen_s": reopen,
        "finished_s": finished,
        "reopen_blocking_s": blocking,
        "rss_mb_per_100k": rss_growth,
        "in_flight_kb": held / 1024,
    }
    say("measuring: per-saga counts...")
    saga_counts = per_saga_counts(sizes)
    dbos = None
    if with_dbos:
        say("measuring: DBOS (child process)...")
        dbos = bench_dbos.run_child(quick)
        if dbos is None:
            say("DBOS not installed (pip install 'sagactor[bench]', or set BENCH_DBOS_PYTHON)")
    missing = "DBOS not installed" if with_dbos else "DBOS skipped"
    rows = rows_of(d, m, r, dbos, sizes, missing)
    return {"rows": rows, "counts": saga_counts, "dbos": dbos, "raw": {**d, **m, **r}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--long", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-extras", action="store_true")
    args = parser.parse_args(argv)
    logging.getLogger("sagactor").setLevel(logging.ERROR)  # recovery crashes on purpose
    out = sys.stderr if args.json else sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    meta = {
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "command": "bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    say(
        f"sagactor bench, {meta['date']}, {meta['cores']} cores, load {meta['load_average']}, "
        f"python {meta['python']}"
    )
    found = measure(Sizes.pick(args.quick, args.long), not args.no_extras, args.quick, say)
    rows: list[Row] = found["rows"]
    if args.json:
        print(json.dumps({**found, "meta": meta, "rows": [row.to_builtins() for row in rows]}))
    else:
        print("\n" + table(rows))
        print(
            "\nper saga (messages: Environment.told; rows: journal records; commits: "
            "Journal.stats; fsyncs: strace, less a run of no saga)"
        )
        print(counts_table(found["counts"]))
    if not args.no_extras:
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            extras(args.quick, args.long)


if __name__ == "__main__":
    main()
