"""A participant's snapshots with many sagas in flight: each one holds the live inbox, so one is
taken at most once per as many records as it holds (not at every ``snapshot_every`` records,
which re-encoded 10,000 inbox records every 1,000 records when 10,000 sagas resumed at once).
What they cost per record stays constant, and a restart from them still finds every effect
applied once. Counts of what the journal was given, not times."""

from __future__ import annotations

from typing import Any

import msgspec

import sagactor as sa
from sagactor.messages import ParticipantSnapshot
from sagactor.persistence.journal import DoneCallback, Record, Snapshot
from sagactor.persistence.memory import MemoryJournal

from .tally import TWO_STEPS, Job, Tally, participants

WAIT = 30.0
EVERY = 10
IN_FLIGHT = 100  # ten times EVERY: the inbox outgrows the snapshot interval
_decode = msgspec.msgpack.Decoder(ParticipantSnapshot).decode


class SnapshotCounting(MemoryJournal):
    """Notes each snapshot of participant ``one``: its seq and how many inbox records it holds."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshots: list[tuple[int, int]] = []

    def append(
        self, records: Any, on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        if snapshot is not None and snapshot.stream == "participant/one":
            self.snapshots.append((snapshot.seq, len(_decode(snapshot.data).inbox)))
        super().append(records, on_done, snapshot=snapshot)


def _held_at_second_step(journal: SnapshotCounting) -> sa.Runtime:
    rt = sa.Runtime.in_memory(
        participants=participants(), sagas=[TWO_STEPS], journal=journal, snapshot_every=EVERY
    )
    rt.inject("two", "work", sa.Fault("delay", seconds=3600))
    rt.start_many(TWO_STEPS, [Job(i) for i in range(IN_FLIGHT)])
    journal.flush()
    return rt


def _records_of_one(journal: MemoryJournal) -> list[Record]:
    return journal.read("participant/one")


def test_a_large_inbox_is_snapshotted_at_most_once_per_as_many_records() -> None:
    journal = SnapshotCounting()
    rt = _held_at_second_step(journal)
    try:
        written = len(_records_of_one(journal))
        assert written == 2 * IN_FLIGHT  # each command: its change and its inbox record
        assert journal.snapshots  # snapshots are still taken
        previous = 0
        for seq, held in journal.snapshots:
            assert seq - previous >= held  # paid for by as many records as it holds
            previous = seq
        # So the inbox records encoded, over all snapshots, stay within the records written
        # (at every EVERY records, it would have been 5 + 10 + ... + 100 = 1,050).
        assert sum(held for _, held in journal.snapshots) <= written
        assert [seq for seq, _ in journal.snapshots] == [10, 20, 40, 80, 160]
    finally:
        rt.crash()
        rt.close()


def test_a_restart_from_such_a_snapshot_applies_every_effect_once() -> None:
    journal = SnapshotCounting()
    crashed = _held_at_second_step(journal)
    crashed.crash()
    crashed.close()
    with sa.Runtime(
        journal, participants=participants(), sagas=[TWO_STEPS], snapshot_every=EVERY
    ) as rt:
        for saga_id in rt.saga_ids():
            assert rt.run(saga_id).result(timeout=WAIT).ok
        assert rt.state("one") == Tally(IN_FLIGHT)  # not redone from the snapshot's tail
        assert rt.state("two") == Tally(IN_FLIGHT)
