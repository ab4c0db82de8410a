"""``rt.list`` and ``rt.counts`` at a large journal: N sagas written straight to the journal
(started, a step, an end: 1 in 10 compensated, 1 in 100 stuck), then the listings timed.
``python bench/bench_list.py [--sagas 100000]``: latency should stay flat as N grows (the
``sagas`` table's indexes), except ``counts``, one pass over the status index.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import sagactor as sa
from sagactor.codec import encode_event
from sagactor.messages import (
    FINAL_EVENTS,
    SagaCompensated,
    SagaCompleted,
    SagaStarted,
    SagaStuck,
    StepStarted,
    event_name,
)
from sagactor.persistence.journal import Record
from sagactor.persistence.sqlite import SqliteJournal

_encode = msgspec.msgpack.encode


def fill(path: Path, sagas: int) -> float:
    """Write the sagas; the seconds it took."""
    began = time.perf_counter()
    raw = msgspec.Raw(_encode({"ref": "x", "amount": 1}))
    with SqliteJournal(path, synchronous="normal") as journal:
        batch: list[Record] = []
        for n in range(sagas):
            end: Any = SagaCompleted()
            if n % 100 == 7:
                end = SagaStuck(reason="compensation of 'ship' failed")
            elif n % 10 == 3:
                end = SagaCompensated(reason="step 'charge' failed")
            events = [
                SagaStarted(saga="order", version=1, mode="orchestration", input=raw, digest="d"),
                StepStarted(step="reserve", attempt=1),
                end,
            ]
            stream = f"saga/s{n:08d}"
            ts = 1_700_000_000.0 + n
            batch.extend(
                Record(stream, i + 1, name, encode_event(e), ts, "", name in FINAL_EVENTS)
                for i, e in enumerate(events)
                for name in (event_name(e),)
            )
            if len(batch) >= 3000:
                journal.append(batch, lambda error: None)
                batch = []
            if (n + 1) % 100_000 == 0:  # a million takes minutes: say how far it is
                print(f"  {n + 1:,} sagas written", file=sys.stderr, flush=True)
        journal.append_and_wait(batch)
    return time.perf_counter() - began


def timed(call: Callable[[], object], repeat: int = 50) -> str:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return f"median {statistics.median(times):7.3f} ms, max {max(times):7.3f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--sagas", type=int, default=100_000)
    args = parser.parse_args(argv)
    logging.getLogger("sagactor").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.db"
        seconds = fill(path, args.sagas)
        print(f"{args.sagas:,} sagas written in {seconds:.1f} s ({path.stat().st_size >> 20} MiB)")
        with sa.Runtime.open(path) as rt:
            page = rt.list(limit=50)
            deep = rt.list(limit=50, after=rt.list(limit=1000).cursor)
            assert len(page.rows) == 50
            assert len(deep.rows) == 50
            middle = 1_700_000_000.0 + args.sagas / 2
            cases: list[tuple[str, Callable[[], object]]] = [
                ("list(limit=50)", lambda: rt.list(limit=50)),
                ("list(limit=50, after=page 20)", lambda: rt.list(limit=50, after=deep.cursor)),
                ("list('stuck', limit=50)", lambda: rt.list("stuck", limit=50)),
                ("list('compensated', since=mid)", lambda: rt.list("compensated", since=middle)),
                ("list(saga='order', until=mid)", lambda: rt.list(saga="order", until=middle)),
                ("journal.saga_row(id)", lambda: rt.journal.saga_row("s00000042")),
                ("history(id)", lambda: rt.history("s00000042")),
                ("counts()", rt.counts),
            ]
            for name, call in cases:
                print(f"  {name:<32} {timed(call, 5 if name == 'counts()' else 50)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
