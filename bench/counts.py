"""Per-saga counts that do not depend on machine noise: messages, appends, rows, commits, fsyncs.

- **messages**: actor messages told, from the runtime's counter ``Environment.told``
  (incremented in ``Environment.tell``, the actors' sends, and ``Runtime._tell``, the
  runtime's sends to its actors).
- **appends**: ``Journal.append`` calls, counted by a thin subclass of the journal.
- **waits**: the appends whose caller waited for the commit before acting (appends less the
  coordinator's decisions that act before their commit, ``Environment.early``; see
  ``sagactor.actors.recomputable``). For one saga alone these are its sequential durable
  commits on the critical path.
- **rows**: journal rows stored (``Journal.stats.rows``: the events table's rows for SQLite,
  where one row holds one append's records of one stream; the in-memory journal counts the
  rows the same records would take).
- **commits**: SQLite transactions committed (``Journal.stats.commits``, or
  ``SqliteJournal.commits`` before the journal had stats); the in-memory journal commits
  nothing durable (0).
- **fsyncs**: ``fsync``/``fdatasync`` calls of a child process run under ``strace -f -c``
  (Linux, strace installed), less those of the same child running no saga.

One saga alone is exact; at 10 and 100 in flight, group commit makes ``commits`` (and fsyncs)
depend on timing, the other counts do not.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sagactor as sa
from sagactor.persistence.journal import DoneCallback, Journal, Record, Snapshot
from sagactor.persistence.memory import MemoryJournal
from sagactor.persistence.sqlite import SqliteJournal

from . import workload

__all__ = ["PerSaga", "commits_of", "fsyncs_per_saga", "per_saga"]


@dataclass(frozen=True, slots=True)
class PerSaga:
    durable: bool
    in_flight: int
    sagas: int
    messages: float
    appends: float
    waits: float
    rows: float
    commits: float

    def to_builtins(self) -> dict[str, Any]:
        return asdict(self)


class _CountingAppends:
    """Counts ``append`` and ``append_unawaited`` calls (a mixin over a concrete journal)."""

    appends = 0

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        self.appends += 1  # appends come from several threads; a bench counter needs no lock
        super().append(records, on_done, snapshot=snapshot)  # type: ignore[misc]

    def append_unawaited(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        then = super().append_unawaited  # type: ignore[misc]
        if then.__func__ is not Journal.append_unawaited:  # that one counts through append
            self.appends += 1
        then(records, on_done, snapshot=snapshot)


class CountingSqlite(_CountingAppends, SqliteJournal):
    pass


class CountingMemory(_CountingAppends, MemoryJournal):
    pass


def _told(rt: sa.Runtime) -> int:
    """The runtime's message counter (a bench hook, not public API)."""
    env = getattr(getattr(rt, "engine", None), "env", None) or getattr(rt, "_env", None)
    told = getattr(env, "told", None)
    if not isinstance(told, int):
        raise RuntimeError("this runtime has no message counter (Environment.told)")
    return told


def _last_position(journal: Journal) -> int:
    records = journal.read_all()
    return records[-1].position if records else 0


def commits_of(journal: Journal) -> int:
    """Transactions the journal committed: ``Journal.stats`` where the journal has it (0 for
    the in-memory journal: nothing is durable), else ``SqliteJournal.commits``."""
    stats = getattr(journal, "stats", None)
    if stats is not None:
        return 0 if not journal.durable else int(stats.commits)
    return int(getattr(journal, "commits", 0))


def _early(rt: sa.Runtime) -> int:
    env = getattr(getattr(rt, "engine", None), "env", None)
    return int(getattr(env, "early", 0))


def _snapshot(rt: sa.Runtime, journal: Any) -> tuple[int, int, int, int]:
    return _told(rt), int(journal.appends), commits_of(journal), _early(rt)


def _quiesce(rt: sa.Runtime, journal: Any) -> None:
    """Wait until nothing moves: the messages after an outcome (SagaEnded to participants, the
    coordinator's own bookkeeping) land after the caller has its result."""
    last = None
    steady = 0
    while steady < 5:  # no flush(): an empty append would count as an append and a commit
        time.sleep(0.02)
        now = (*_snapshot(rt, journal), _last_position(journal))
        steady = steady + 1 if now == last else 0
        last = now


def per_saga(durable: bool, in_flight: int, sagas: int) -> PerSaga:
    """Counts per saga for ``sagas`` sagas run ``in_flight`` at a time (after one warm-up saga,
    so one-off costs such as the first snapshot do not count)."""
    with tempfile.TemporaryDirectory() as directory:
        journal: CountingSqlite | CountingMemory = (
            CountingSqlite(Path(directory) / "counts.db") if durable else CountingMemory()
        )
        with sa.Runtime(journal, participants=workload.participants(), sagas=[workload.SAGA]) as rt:
            workload.window(rt, 1, 1)
            _quiesce(rt, journal)
            told, appends, commits, early = _snapshot(rt, journal)
            rows = journal.stats.rows
            workload.window(rt, in_flight, sagas)
            _quiesce(rt, journal)
            told2, appends2, commits2, early2 = _snapshot(rt, journal)
            rows = journal.stats.rows - rows
    return PerSaga(
        durable,
        in_flight,
        sagas,
        messages=(told2 - told) / sagas,
        appends=(appends2 - appends) / sagas,
        waits=(appends2 - appends - (early2 - early)) / sagas,
        rows=rows / sagas,
        commits=(commits2 - commits) / sagas,
    )


# -- fsyncs: a child process under strace ------------------------------------------------------


def _child(in_flight: int, sagas: int) -> None:
    """The traced child: one durable runtime, a warm-up saga, then ``sagas`` sagas."""
    with tempfile.TemporaryDirectory() as directory:
        rt = workload.open_durable(Path(directory) / "fsync.db")
        workload.window(rt, 1, 1)
        if sagas:
            workload.window(rt, in_flight, sagas)
        rt.close()


def _traced_fsyncs(in_flight: int, sagas: int) -> int:
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "strace.txt"
        command = [
            "strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(out),
            sys.executable, "-m", "bench.counts", "--child", str(in_flight), str(sagas),
        ]  # fmt: skip
        subprocess.run(command, cwd=root, check=True, capture_output=True, timeout=600)
        calls = re.findall(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?f(?:data)?sync$",
                           out.read_text(), re.MULTILINE)  # fmt: skip
    return sum(int(n) for n in calls)


def fsyncs_per_saga(in_flight: int, sagas: int) -> float | None:
    """fsync + fdatasync calls per durable saga, or None where strace cannot run."""
    if shutil.which("strace") is None or not sys.platform.startswith("linux"):
        return None
    try:
        base = _traced_fsyncs(in_flight, 0)
        loaded = _traced_fsyncs(in_flight, sagas)
    except (subprocess.SubprocessError, OSError):
        return None  # ptrace refused (a container without CAP_SYS_PTRACE), or no strace
    return (loaded - base) / sagas


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        _child(int(sys.argv[2]), int(sys.argv[3]))
        return
    for durable in (False, True):
        for in_flight, sagas in ((1, 20), (10, 200), (100, 1000)):
            print(json.dumps(per_saga(durable, in_flight, sagas).to_builtins()))
    print(json.dumps({"fsyncs_per_saga_1_in_flight": fsyncs_per_saga(1, 50)}))


if __name__ == "__main__":
    main()
