"""Several versions of one saga at once (issue 14, item 4).

``trip`` version 1 books a hotel; version 2 also sends a confirmation. Registered together,
new starts by name run version 2 while a start given the version-1 object runs version 1;
after a crash, version-1 sagas in flight finish on version 1 beside version 2's; with version
1 gone they are quarantined and never block the others; a finished version-1 saga reads without
its code; ``check_upgrade`` (and ``sagactor upgrade-check``) says before a deploy which
in-flight sagas would not resume. Orchestration, step-list choreography and native
choreography; in memory and in SQLite.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sagactor as sa
from sagactor.messages import SagaStarted
from sagactor.persistence.memory import MemoryJournal
from sagactor.playground.cli import main
from sagactor.testing import UpgradeReport, check_upgrade

WAIT = 10.0


class Trip(msgspec.Struct, frozen=True):
    destination: str


class TripRequested(msgspec.Struct, frozen=True):
    destination: str


class TripBooked(msgspec.Struct, frozen=True):
    destination: str


class Booked(msgspec.Struct, frozen=True):
    key: str


class Sent(msgspec.Struct, frozen=True):
    key: str


class Ledger(msgspec.Struct):
    booked: list[str] = []
    sent: list[str] = []


class Hotel(sa.Participant[Ledger]):
    """Books each trip once; with a closed ``gate`` it waits, so sagas stay in flight."""

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


class Mailer(sa.Participant[Ledger]):
    name = "mailer"

    def initial_state(self) -> Ledger:
        return Ledger()

    @sa.action("confirm")
    def confirm(self, ctx: sa.StepContext, trip: Trip) -> str:
        ctx.record(Sent(ctx.saga_id))
        return f"confirmed {trip.destination}"

    @sa.evolve
    def _sent(self, state: Ledger, change: Sent) -> None:
        state.sent.append(change.key)


V1 = sa.Saga("trip", [sa.Step("book", "hotel", "book")], input_type=Trip)
V2 = sa.Saga(
    "trip",
    [sa.Step("book", "hotel", "book"), sa.Step("confirm", "mailer", "confirm", compensable=False)],
    version=2,
    input_type=Trip,
)
NATIVE_V1 = sa.Choreography("native_trip", start=TripRequested, completed=(TripBooked,))
NATIVE_V2 = sa.Choreography("native_trip", start=TripRequested, completed=(TripBooked,), version=2)


@pytest.fixture(params=["memory", "sqlite"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryJournal | Path:
    return MemoryJournal() if request.param == "memory" else tmp_path / "trips.db"


def open_runtime(
    where: MemoryJournal | Path, sagas: list[sa.Saga | sa.Choreography], gate: Any = None
) -> sa.Runtime:
    participants = [Hotel(gate), Mailer()]
    if isinstance(where, MemoryJournal):
        return sa.Runtime.in_memory(journal=where, participants=participants, sagas=sagas)
    return sa.Runtime.open(where, participants=participants, sagas=sagas)


def version_of(rt: sa.Runtime, saga_id: str) -> int:
    started = rt.history(saga_id)[0].event
    assert isinstance(started, SagaStarted)
    return started.version


Start = tuple[sa.Saga | sa.Choreography, Any, str, sa.Mode]


def crash_in_flight(where: MemoryJournal | Path, starts: list[Start]) -> None:
    """Start each (definition, input, id, mode) with the hotel held, then crash."""
    gate = threading.Event()
    rt = open_runtime(where, [V1, V2, NATIVE_V1, NATIVE_V2], gate)
    try:
        for definition, value, saga_id, mode in starts:
            rt.start(definition, value, saga_id=saga_id, mode=mode)
        rt.crash()
    finally:
        gate.set()
        rt.close()


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_both_versions_run_at_once_and_a_start_by_name_uses_the_latest(
    where: MemoryJournal | Path, mode: sa.Mode
) -> None:
    with open_runtime(where, [V1, V2]) as rt:
        latest = rt.start("trip", Trip("oslo"), saga_id="by-name", mode=mode).result(WAIT)
        pinned = rt.start(V1, Trip("rome"), saga_id="pinned", mode=mode).result(WAIT)
        newest = rt.start(V2, Trip("lima"), saga_id="newest", mode=mode).result(WAIT)

        assert latest.ok
        assert pinned.ok
        assert newest.ok
        assert latest.results == {"book": "oslo", "confirm": "confirmed oslo"}
        assert pinned.results == {"book": "rome"}  # version 1: no confirmation
        assert (version_of(rt, "by-name"), version_of(rt, "pinned")) == (2, 1)
        assert sorted(rt.state("mailer").sent) == ["by-name", "newest"]
        assert rt.definitions["trip"] is V2
        assert [d.key for d in rt.definitions.every()] == ["trip@1", "trip@2"]
        assert rt.definitions.exact("trip", 1) is V1
        # Registering an older version later does not take the name back.
        rt.define(V1)
        assert rt.start("trip", Trip("bern")).result(WAIT).results["confirm"] == "confirmed bern"


def test_a_changed_definition_under_a_registered_version_is_refused() -> None:
    changed = sa.Saga("trip", [sa.Step("reserve", "hotel", "book")], input_type=Trip)
    with sa.Runtime.in_memory(participants=[Hotel(), Mailer()], sagas=[V1, V2]) as rt:
        with pytest.raises(sa.DefinitionError, match="bump the version"):
            rt.define(changed)
        assert rt.definitions.exact("trip", 1) is V1


def test_native_choreography_versions_run_at_once(where: MemoryJournal | Path) -> None:
    with open_runtime(where, [NATIVE_V1, NATIVE_V2]) as rt:
        assert rt.start("native_trip", TripRequested("oslo"), saga_id="n2").result(WAIT).ok
        assert rt.start(NATIVE_V1, TripRequested("rome"), saga_id="n1").result(WAIT).ok
        assert (version_of(rt, "n2"), version_of(rt, "n1")) == (2, 1)


@pytest.mark.parametrize("kind", ["orchestration", "choreography", "native"])
def test_version_1_in_flight_finishes_on_version_1_after_a_restart(
    where: MemoryJournal | Path, kind: str
) -> None:
    mode: sa.Mode = "choreography" if kind == "choreography" else "orchestration"
    old, new = (NATIVE_V1, NATIVE_V2) if kind == "native" else (V1, V2)
    made = TripRequested if kind == "native" else Trip
    starts: list[Start] = [(old, made(f"old-{i}"), f"v1-{i}", mode) for i in range(5)]
    starts += [(new, made(f"new-{i}"), f"v2-{i}", mode) for i in range(5)]
    crash_in_flight(where, starts)

    with open_runtime(where, [old, new]) as rt:
        assert rt.quarantined() == {}
        for i in range(5):
            v1 = rt.run(f"v1-{i}").result(WAIT)
            v2 = rt.run(f"v2-{i}").result(WAIT)
            assert v1.ok
            assert v2.ok
            assert (version_of(rt, f"v1-{i}"), version_of(rt, f"v2-{i}")) == (1, 2)
            if kind != "native":
                assert v1.results == {"book": f"old-{i}"}  # resumed on version 1's steps
                assert v2.results["confirm"] == f"confirmed new-{i}"
        if kind != "native":
            assert sorted(rt.state("mailer").sent) == sorted(f"v2-{i}" for i in range(5))
        # New starts by name meanwhile use the latest.
        run = rt.start(new.name, made("fresh"), saga_id="fresh", mode=mode)
        assert run.result(WAIT).ok
        assert version_of(rt, "fresh") == 2


def test_version_1_removed_is_quarantined_and_never_blocks_the_others(
    where: MemoryJournal | Path,
) -> None:
    starts: list[Start] = [(V1, Trip("old"), "v1", "orchestration")]
    starts += [(V2, Trip(f"new-{i}"), f"v2-{i}", "orchestration") for i in range(10)]
    crash_in_flight(where, starts)

    with open_runtime(where, [V2]) as rt:  # version 1 removed from the code
        for i in range(10):
            assert rt.run(f"v2-{i}").result(WAIT).ok
        assert list(rt.quarantined()) == ["v1"]
        assert rt.status("v1").status is sa.SagaStatus.QUARANTINED
        assert "registered version is 2" in rt.status("v1").reason
        rt.define(V1)  # put back: it resumes on version 1
        assert rt.retry_quarantined("v1").result(WAIT).results == {"book": "old"}

    with open_runtime(where, [V2]) as rt:  # finished: readable without version 1's code
        outcome = rt.status("v1")
        assert outcome.ok
        assert outcome.results == {"book": "old"}
        assert rt.history("v1")[0].event.version == 1


def test_check_upgrade_names_the_sagas_that_would_not_resume(
    where: MemoryJournal | Path,
) -> None:
    starts: list[Start] = [(V1, Trip(f"old-{i}"), f"v1-{i}", "orchestration") for i in range(3)]
    starts += [(V2, Trip("new"), "v2", "orchestration")]
    starts += [(NATIVE_V1, TripRequested("n"), "n1", "orchestration")]
    crash_in_flight(where, starts)
    journal = where if isinstance(where, MemoryJournal) else str(where)

    fine = check_upgrade(journal, [Hotel(), Mailer()], [V1, V2, NATIVE_V1])
    assert fine.ok, str(fine)
    assert sorted(fine.resumable) == ["n1", "v1-0", "v1-1", "v1-2", "v2"]
    assert fine.in_flight == {"trip@1": 3, "trip@2": 1, "native_trip@1": 1}

    # The deploy drops version 1 and the native flow, and the mailer lost its action.
    class NewMailer(sa.Participant[Ledger]):
        name = "mailer"

        def initial_state(self) -> Ledger:
            return Ledger()

    report = check_upgrade(journal, [Hotel(), NewMailer()], [V2])
    assert isinstance(report, UpgradeReport)
    assert not report.ok
    assert sorted(report.problems) == ["n1", "v1-0", "v1-1", "v1-2", "v2"]
    assert "registered version is 2" in report.problems["v1-0"]
    assert "native_trip" in report.problems["n1"]
    assert "no action 'confirm'" in report.problems["v2"]
    assert report.in_flight["trip@1"] == 3
    assert "would NOT resume" in str(report)

    # The check wrote nothing: the real reopen still resumes every one.
    with open_runtime(where, [V1, V2, NATIVE_V1]) as rt:
        for saga_id in fine.resumable:
            assert rt.run(saga_id).result(WAIT).ok


def test_upgrade_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "trips.db"
    crash_in_flight(db, [(V1, Trip("old"), "v1", "orchestration")])
    module = tmp_path / "deploy_v2.py"
    module.write_text(
        "from tests.test_versions import Hotel, Mailer, V2\n"
        "def participants():\n    return [Hotel(), Mailer()]\n"
        "sagas = [V2]\n"
    )
    assert main(["upgrade-check", str(db), "--module", str(module)]) == 1
    out = capsys.readouterr().out
    assert "v1: " in out
    assert "registered version is 2" in out

    module.write_text(
        module.read_text().replace(
            "sagas = [V2]", "from tests.test_versions import V1\nsagas = [V1, V2]"
        )
    )
    assert main(["upgrade-check", str(db), "--module", str(module)]) == 0
    assert "1 would resume" in capsys.readouterr().out
