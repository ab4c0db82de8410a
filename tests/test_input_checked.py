"""A saga's input is checked against its ``input_type`` before anything is journaled, and the
handlers see the same input live and after a restart.

Before, ``rt.start(saga, {"destination": "Mars"})`` with ``input_type=Trip`` was journaled as
it was; ``status`` then raised a raw ``msgspec.ValidationError`` and, after a crash, so did every
``Runtime.open`` of the file. And without an ``input_type``, an unannotated handler got the
caller's object live but a ``dict`` after a restart. A saga may also be started by the name of
a registered definition.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

import sagactor as sa
from sagactor.persistence.memory import MemoryJournal

WAIT = 10.0


class Trip(msgspec.Struct, frozen=True):
    destination: str
    nights: int


@dataclasses.dataclass
class TripForm:
    destination: str
    nights: int


class Travel(sa.Participant[None]):
    """Returns the type of the input each handler got; ``gate`` holds the second step."""

    name = "travel"

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.gate = gate

    @sa.action("first")
    def first(self, ctx: sa.StepContext, trip: Any) -> str:  # Any: as good as unannotated
        return type(trip).__name__

    @sa.action("second")
    def second(self, ctx: sa.StepContext, trip: Any) -> str:
        if self.gate is not None:
            self.gate.wait(WAIT)
        return type(trip).__name__

    @sa.action("typed")
    def typed(self, ctx: sa.StepContext, trip: Trip) -> int:
        return trip.nights


def saga(name: str, input_type: Any = None) -> sa.Saga:
    steps = [
        sa.Step("first", "travel", "first", compensable=False),
        sa.Step("second", "travel", "second", compensable=False),
    ]
    return sa.Saga(name, steps, input_type=input_type)


TRIP = saga("trip", Trip)
LOOSE = saga("loose")  # no input_type
TYPED = sa.Saga("typed", [sa.Step("nights", "travel", "typed", compensable=False)], input_type=Trip)


@pytest.fixture(params=["memory", "sqlite"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryJournal | Path:
    return MemoryJournal() if request.param == "memory" else tmp_path / "trips.db"


def open_runtime(where: MemoryJournal | Path, gate: threading.Event | None = None) -> sa.Runtime:
    sagas = [TRIP, LOOSE, TYPED]
    if isinstance(where, MemoryJournal):
        return sa.Runtime.in_memory(journal=where, participants=[Travel(gate)], sagas=sagas)
    return sa.Runtime.open(where, participants=[Travel(gate)], sagas=sagas)


# -- refused before journaling -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_a_wrong_typed_input_is_refused_and_nothing_is_journaled(
    where: MemoryJournal | Path, mode: sa.Mode
) -> None:
    with open_runtime(where) as rt:
        with pytest.raises(sa.PayloadError) as missing:
            rt.start(TRIP, {"destination": "Mars"}, mode=mode)
        assert missing.value.saga == "trip"
        assert missing.value.field == "nights"
        assert "saga 'trip'" in str(missing.value)
        assert "missing required field `nights`" in str(missing.value)
        assert isinstance(missing.value.cause, msgspec.ValidationError)

        with pytest.raises(sa.PayloadError) as wrong:
            rt.start(TRIP, {"destination": "Mars", "nights": "two"}, mode=mode, saga_id="m1")
        assert wrong.value.field == "nights"
        assert "expected `int`, got `str`" in str(wrong.value)
        with pytest.raises(sa.PayloadError, match="not a valid Trip"):
            rt.start(TRIP, "Mars", mode=mode)
        with pytest.raises(sa.UnknownSaga):
            rt.status("m1")
        assert rt.saga_ids() == []
    with open_runtime(where) as rt:  # and the journal opens as ever
        assert rt.saga_ids() == []


def test_one_bad_input_in_a_batch_starts_none(where: MemoryJournal | Path) -> None:
    with open_runtime(where) as rt:
        inputs: list[Any] = [Trip("Rome", 2), {"destination": "Oslo", "nights": 1}, {"nights": 3}]
        with pytest.raises(sa.PayloadError) as error:
            rt.start_many(TRIP, inputs)
        assert error.value.field == "destination"
        assert rt.saga_ids() == []


def test_astart_checks_the_input_too() -> None:
    async def main() -> None:
        async with sa.Runtime.in_memory(participants=[Travel()], sagas=[TRIP]) as rt:
            with pytest.raises(sa.PayloadError, match="nights"):
                await rt.astart(TRIP, {"destination": "Mars"})
            assert rt.saga_ids() == []
            assert (await (await rt.astart("trip", {"destination": "Mars", "nights": 1}))).ok

    anyio.run(main)


def test_a_dict_or_a_dataclass_becomes_the_input_type(where: MemoryJournal | Path) -> None:
    with open_runtime(where) as rt:
        for given in ({"destination": "Mars", "nights": 3}, TripForm("Mars", 3), Trip("Mars", 3)):
            outcome = rt.start(TRIP, given).result(WAIT)
            assert outcome.results == {"first": "Trip", "second": "Trip"}  # even unannotated
            assert rt.start(TYPED, given).result(WAIT).results == {"nights": 3}


# -- the same input live and after a restart ----------------------------------------------------


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
@pytest.mark.parametrize("definition", [LOOSE, TRIP], ids=["no-input-type", "input-type"])
def test_handlers_see_the_same_input_live_and_after_a_restart(
    where: MemoryJournal | Path, mode: sa.Mode, definition: sa.Saga
) -> None:
    gate = threading.Event()
    rt = open_runtime(where, gate)
    try:
        live = rt.start(definition, Trip("Mars", 3), mode=mode, saga_id="live")
        gate.set()
        seen_live = live.result(WAIT).results
        gate.clear()
        rt.start(definition, Trip("Venus", 2), mode=mode, saga_id="restarted")
        rt.crash()  # while "second" waits: it runs again after the restart
    finally:
        gate.set()
        rt.close()
    with open_runtime(where) as again:
        seen_after = again.run("restarted").result(WAIT).results
    assert seen_live["first"] == seen_live["second"]
    assert seen_after["second"] == seen_live["second"]
    expected = "Trip" if definition.input_type else "dict"
    assert seen_after["second"] == expected


# -- starting by name ---------------------------------------------------------------------------


def test_a_saga_starts_by_the_name_of_its_registered_definition(
    where: MemoryJournal | Path,
) -> None:
    with open_runtime(where) as rt:
        assert rt.start("trip", {"destination": "Mars", "nights": 1}).result(WAIT).ok
        runs = rt.start_many("typed", [Trip("A", 1), Trip("B", 2)], mode="choreography")
        assert [r.result(WAIT).results for r in runs] == [{"nights": 1}, {"nights": 2}]
        with pytest.raises(sa.DefinitionError) as unknown:
            rt.start("tirp", {"destination": "Mars", "nights": 1})
        assert "'tirp'" in str(unknown.value)
        assert "loose, trip, typed" in str(unknown.value)
        with pytest.raises(sa.DefinitionError, match="registered"):
            rt.start(42, {})  # type: ignore[arg-type]
