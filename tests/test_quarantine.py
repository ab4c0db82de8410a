"""One saga that cannot be loaded never blocks the others (DESIGN 5.10).

A saga in flight at a crash whose definition is unknown or of another version, whose input no
longer decodes, or whose events do not decode, used to make every ``Runtime.open`` of the
journal raise, so that no saga at all recovered. Now it is quarantined: every other saga
resumes and finishes; the quarantined one is visible (``status``, ``quarantined()``, the
playground) and says so at once when waited for; ``retry_quarantined`` resumes it once the
cause is fixed. In memory and in SQLite; orchestration, step-list choreography and native
choreography.
"""

from __future__ import annotations

import importlib.util
import os
import textwrap
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.journal import Record
from sagactor.persistence.memory import MemoryJournal
from sagactor.playground.cli import main

WAIT = 10.0
OTHERS = 20


class Trip(msgspec.Struct, frozen=True):
    destination: str
    nights: int = 1


class TripRequested(msgspec.Struct, frozen=True):
    destination: str


class TripBooked(msgspec.Struct, frozen=True):
    destination: str


class Booked(msgspec.Struct, frozen=True):
    key: str


class Ledger(msgspec.Struct):
    booked: list[str] = []


class Hotel(sa.Participant[Ledger]):
    """Books each trip once; with a closed ``gate`` its handlers wait, so sagas stay in flight."""

    name = "hotel"

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate

    def initial_state(self) -> Ledger:
        return Ledger()

    def _wait(self) -> None:
        if self.gate is not None:
            self.gate.wait(WAIT)

    @sa.action("book")
    def book(self, ctx: sa.StepContext, trip: Trip) -> str:
        self._wait()
        ctx.record(Booked(ctx.saga_id))
        return trip.destination

    @sa.compensation("book")
    def unbook(self, ctx: sa.StepContext, trip: Trip, done: str) -> None:
        pass

    @sa.on(TripRequested, emits=(TripBooked,))
    def requested(self, ctx: sa.StepContext, event: TripRequested) -> None:
        self._wait()
        ctx.record(Booked(ctx.saga_id))
        ctx.publish(TripBooked(event.destination))

    @sa.evolve
    def _booked(self, state: Ledger, change: Booked) -> None:
        state.booked.append(change.key)


TRIP = sa.Saga("trip", [sa.Step("book", "hotel", "book")], input_type=Trip)
LEGACY = sa.Saga("legacy", [sa.Step("book", "hotel", "book")], input_type=Trip)
NATIVE = sa.Choreography("native_trip", start=TripRequested, completed=(TripBooked,))
LEGACY_NATIVE = sa.Choreography("legacy_trip", start=TripRequested, completed=(TripBooked,))

KINDS = ("orchestration", "choreography", "native")


@pytest.fixture(params=["memory", "sqlite"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryJournal | Path:
    return MemoryJournal() if request.param == "memory" else tmp_path / "trips.db"


def open_runtime(
    where: MemoryJournal | Path, sagas: list[sa.Saga | sa.Choreography], gate: Any = None
) -> sa.Runtime:
    participants = [Hotel(gate)]
    if isinstance(where, MemoryJournal):
        return sa.Runtime.in_memory(journal=where, participants=participants, sagas=sagas)
    return sa.Runtime.open(where, participants=participants, sagas=sagas)


Start = tuple[sa.Saga | sa.Choreography, Any, str, sa.Mode]


def crash_in_flight(
    where: MemoryJournal | Path,
    starts: list[Start],
    *,
    before_crash: Any = None,
) -> None:
    """Start each ``(definition, input, id, mode)`` and crash while all are in flight."""
    gate = threading.Event()
    rt = open_runtime(where, list({d.name: d for d, *_ in starts}.values()), gate)
    try:
        for definition, value, saga_id, mode in starts:
            rt.start(definition, value, saga_id=saga_id, mode=mode)
        if before_crash is not None:
            before_crash(rt)
        rt.crash()
    finally:
        gate.set()
        rt.close()


def definitions(kind: str) -> tuple[sa.Saga | sa.Choreography, sa.Saga | sa.Choreography]:
    return (NATIVE, LEGACY_NATIVE) if kind == "native" else (TRIP, LEGACY)


def trip_input(kind: str, destination: str) -> Any:
    return TripRequested(destination) if kind == "native" else Trip(destination)


def mode_of(kind: str) -> sa.Mode:
    return "choreography" if kind == "choreography" else "orchestration"


@pytest.mark.parametrize("kind", KINDS)
def test_an_unknown_definition_is_quarantined_and_the_others_finish(
    where: MemoryJournal | Path, kind: str
) -> None:
    ordinary, legacy = definitions(kind)
    starts = [
        (ordinary, trip_input(kind, f"city-{i}"), f"t{i}", mode_of(kind)) for i in range(OTHERS)
    ]
    starts.append((legacy, trip_input(kind, "atlantis"), "old", mode_of(kind)))
    crash_in_flight(where, starts)

    with open_runtime(where, [ordinary]) as rt:  # the legacy definition is gone
        for i in range(OTHERS):
            assert rt.run(f"t{i}").result(WAIT).status is sa.SagaStatus.COMPLETED

        outcome = rt.status("old")
        assert outcome.status is sa.SagaStatus.QUARANTINED
        assert not outcome.status.terminal
        assert outcome.saga == legacy.name
        assert legacy.name in outcome.reason
        quarantined = rt.quarantined()
        assert list(quarantined) == ["old"]
        assert isinstance(quarantined["old"].cause, sa.UnknownSagaType)
        # Waiting for it says why at once, rather than running into the timeout.
        with pytest.raises(sa.SagaQuarantined, match="old"):
            rt.run("old").result(WAIT)
        with pytest.raises(sa.SagaQuarantined):
            rt.cancel("old")
        # Retried before the cause is fixed: still quarantined, still named.
        with pytest.raises(sa.SagaQuarantined) as still:
            rt.retry_quarantined("old")
        assert isinstance(still.value.cause, sa.UnknownSagaType)
        assert rt.status("old").status is sa.SagaStatus.QUARANTINED

        rt.define(legacy)  # the fix: the definition is registered again
        assert rt.retry_quarantined("old").result(WAIT).status is sa.SagaStatus.COMPLETED
        assert rt.quarantined() == {}
        assert rt.status("old").status is sa.SagaStatus.COMPLETED
        assert sorted(rt.state("hotel").booked) == sorted(
            [*(f"t{i}" for i in range(OTHERS)), "old"]
        )

    with open_runtime(where, [ordinary, legacy]) as rt:
        assert rt.journal.open_streams("saga/") == []
        assert rt.quarantined() == {}


def test_a_saga_of_another_version_is_quarantined_until_that_version_is_back(
    where: MemoryJournal | Path,
) -> None:
    other = sa.Saga("other", [sa.Step("book", "hotel", "book")], input_type=Trip)
    starts: list[Start] = [
        (other, Trip(f"city-{i}"), f"o{i}", "orchestration") for i in range(OTHERS)
    ]
    starts.append((TRIP, Trip("rome"), "v1", "orchestration"))
    crash_in_flight(where, starts)

    trip_v2 = sa.Saga("trip", [sa.Step("book", "hotel", "book")], version=2, input_type=Trip)
    with open_runtime(where, [other, trip_v2]) as rt:
        for i in range(OTHERS):
            assert rt.run(f"o{i}").result(WAIT).ok
        error = rt.quarantined()["v1"]
        assert isinstance(error.cause, sa.IncompatibleDefinition)
        assert "version 1" in str(error)
        assert "version is 2" in str(error)
        # New sagas of version 2 run meanwhile.
        assert rt.start(trip_v2, Trip("oslo")).result(WAIT).ok
        rt.define(TRIP)  # version 1 registered again
        assert rt.retry_quarantined("v1").result(WAIT).ok


@pytest.mark.parametrize("kind", ["orchestration", "choreography"])
def test_an_input_that_no_longer_decodes_is_quarantined_until_the_type_is_fixed(
    where: MemoryJournal | Path, kind: str
) -> None:
    starts: list[Start] = [(TRIP, Trip(f"city-{i}"), f"t{i}", mode_of(kind)) for i in range(3)]
    crash_in_flight(where, starts)

    # A developer added a required field without bumping the version: nothing decodes.
    class StrictTrip(msgspec.Struct, frozen=True):
        destination: str
        guests: int

    strict = sa.Saga("trip", [sa.Step("book", "hotel", "book")], input_type=StrictTrip)
    with open_runtime(where, [strict]) as rt:
        quarantined = rt.quarantined()
        assert sorted(quarantined) == ["t0", "t1", "t2"]
        cause = quarantined["t0"].cause
        assert isinstance(cause, sa.PayloadError)
        assert cause.field == "guests"
        assert "StrictTrip" in str(cause)
        assert rt.status("t1").status is sa.SagaStatus.QUARANTINED

    # The fix (a default for the new field) is picked up at the next open.
    class FixedTrip(msgspec.Struct, frozen=True):
        destination: str
        guests: int = 1

    fixed = sa.Saga("trip", [sa.Step("book", "hotel", "book")], input_type=FixedTrip)
    with open_runtime(where, [fixed]) as rt:
        assert rt.quarantined() == {}
        for i in range(3):
            assert rt.run(f"t{i}").result(WAIT).ok


@pytest.mark.parametrize("kind", ["orchestration", "choreography"])
def test_a_step_renamed_without_a_version_bump_quarantines_the_sagas_that_ran_it(
    where: MemoryJournal | Path, kind: str
) -> None:
    other = sa.Saga("other", [sa.Step("book", "hotel", "book")], input_type=Trip)
    starts: list[Start] = [(other, Trip(f"city-{i}"), f"o{i}", mode_of(kind)) for i in range(5)]
    starts.append((TRIP, Trip("rome"), "renamed", mode_of(kind)))
    crash_in_flight(where, starts)

    renamed = sa.Saga("trip", [sa.Step("reserve", "hotel", "book")], input_type=Trip)
    with open_runtime(where, [other, renamed]) as rt:
        for i in range(5):
            assert rt.run(f"o{i}").result(WAIT).ok
        cause = rt.quarantined()["renamed"].cause
        assert isinstance(cause, sa.IncompatibleDefinition)
        assert "['book']" in str(cause)
        assert "bump the version" in str(cause)


@pytest.mark.parametrize("kind", KINDS)
def test_an_undecodable_event_quarantines_only_its_saga(
    where: MemoryJournal | Path, kind: str
) -> None:
    ordinary, _ = definitions(kind)
    starts = [(ordinary, trip_input(kind, f"city-{i}"), f"t{i}", mode_of(kind)) for i in range(5)]

    def damage(rt: sa.Runtime) -> None:
        stream = "saga/t3"
        seq = rt.journal.last_seq(stream) + 1
        rt.journal.append_and_wait([Record(stream, seq, "StepSucceeded", b"\xc1\xc1", 0.0, "")])

    crash_in_flight(where, starts, before_crash=damage)
    with open_runtime(where, [ordinary]) as rt:
        for i in (0, 1, 2, 4):
            assert rt.run(f"t{i}").result(WAIT).ok
        assert list(rt.quarantined()) == ["t3"]
        assert isinstance(rt.quarantined()["t3"].cause, sa.JournalCorrupt)
        outcome = rt.status("t3")
        assert outcome.status is sa.SagaStatus.QUARANTINED
        assert outcome.saga == ordinary.name
        assert "saga/t3" in outcome.reason
        with pytest.raises(sa.SagaQuarantined):
            rt.retry_quarantined("t3")


def test_retrying_a_saga_that_is_not_quarantined_changes_nothing(
    where: MemoryJournal | Path,
) -> None:
    with open_runtime(where, [TRIP]) as rt:
        run = rt.start(TRIP, Trip("lima"))
        assert run.result(WAIT).ok
        assert rt.retry_quarantined(run.id).result(WAIT).ok
        with pytest.raises(sa.UnknownSaga):
            rt.retry_quarantined("nope")


# -- the playground ----------------------------------------------------------------------------

MODULE = """
    import threading

    import msgspec
    import sagactor as sa


    class Trip(msgspec.Struct, frozen=True):
        destination: str


    class Booked(msgspec.Struct, frozen=True):
        key: str


    GATE = threading.Event()


    class Hotel(sa.Participant[list]):
        name = "hotel"

        def __init__(self, blocking: bool = False) -> None:
            self.blocking = blocking

        def initial_state(self) -> list:
            return []

        @sa.action("book")
        def book(self, ctx: sa.StepContext, trip: Trip) -> str:
            if self.blocking:
                GATE.wait(10)
            ctx.record(Booked(ctx.saga_id))
            return trip.destination

        @sa.compensation("book")
        def unbook(self, ctx: sa.StepContext, trip: Trip, done: str) -> None:
            pass

        @sa.evolve
        def _booked(self, state: list, change: Booked) -> None:
            state.append(change.key)


    def participants():
        return [Hotel()]


    trip = sa.Saga("trip", [sa.Step("book", "hotel", "book")], input_type=Trip)
    legacy = sa.Saga("legacy", [sa.Step("book", "hotel", "book")], input_type=Trip)
    sagas = [trip]  # legacy is no longer offered
"""


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("quarantine_domain", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_playground_shows_a_quarantined_saga_and_retries_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module_path = tmp_path / "trips_domain.py"
    module_path.write_text(textwrap.dedent(MODULE))
    domain = _load(module_path)
    db = tmp_path / "play.db"
    rt = sa.Runtime.open(db, participants=[domain.Hotel(blocking=True)], sagas=[domain.trip])
    rt.define(domain.legacy)
    try:
        rt.start(domain.trip, domain.Trip("rome"), saga_id="t1")
        rt.start(domain.legacy, domain.Trip("atlantis"), saga_id="old")
        rt.crash()
    finally:
        domain.GATE.set()
        rt.close()

    monkeypatch.syspath_prepend(str(tmp_path))
    script = tmp_path / "session.play"
    script.write_text(
        textwrap.dedent(
            """
            wait 5
            sagas
            py import trips_domain; rt.define(trips_domain.legacy)
            py rt.retry_quarantined("old").result(5).status.value
            sagas
            """
        )
    )
    status = main(["play", str(db), "--module", str(module_path), "--script", str(script)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "1 saga(s) quarantined" in out
    assert "old: 1 in-flight saga(s) have no registered definition: old (legacy)" in out
    first, second = out.split("> sagas\n")[1:3]
    assert "1 quarantined" in first
    assert "quarantined: 1 in-flight saga(s) have no registered definition" in first
    assert "'completed'" in first  # what the retried saga's result said
    assert "quarantined" not in second
    assert "2 completed" in second
    assert os.path.exists(db)


def test_inspect_lists_an_undecodable_saga_as_quarantined_and_the_others_as_ever(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "trips.db"
    starts: list[Start] = [(TRIP, Trip(f"city-{i}"), f"t{i}", "orchestration") for i in range(3)]

    def damage(rt: sa.Runtime) -> None:
        seq = rt.journal.last_seq("saga/t1") + 1
        rt.journal.append_and_wait([Record("saga/t1", seq, "StepSucceeded", b"\xc1", 0.0, "")])

    crash_in_flight(db, starts, before_crash=damage)
    assert main(["inspect", str(db), "--all"]) == 0
    out = capsys.readouterr().out
    assert "3 (2 running, 1 quarantined)" in out
    row = next(line for line in out.splitlines() if line.lstrip().startswith("t1 "))
    assert row.split()[:3] == ["t1", "trip", "quarantined"]
    assert "saga/t1 record" in row
