"""Watching sagas run: listeners get every durable event, the `sagactor` log tells the story,
OpenTelemetry spans follow sagas, attempts and compensations; participants of the test's own."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import sagactor as sa
from sagactor.otel import SpanListener


class Trip(msgspec.Struct, frozen=True):
    city: str
    nights: int


class Hotel(sa.Participant[None]):
    name = "hotel"

    def __init__(self) -> None:
        super().__init__()
        self.flaky = 0  # technical errors to raise before succeeding

    @sa.action("book")
    def book(self, ctx: sa.StepContext, trip: Trip) -> str:
        if self.flaky:
            self.flaky -= 1
            raise ConnectionError("hotel API down")
        return f"room in {trip.city}"

    @sa.compensation("book")
    def cancel(self, ctx: sa.StepContext, trip: Trip, done: str | None) -> None: ...


class Flight(sa.Participant[None]):
    name = "flight"

    def __init__(self) -> None:
        super().__init__()
        self.undo_fails = False

    @sa.action("fly")
    def fly(self, ctx: sa.StepContext, trip: Trip) -> str:
        if trip.city == "Atlantis":
            raise sa.StepFailed("no flights to Atlantis")
        return "seat 12A"

    @sa.compensation("fly")
    def unfly(self, ctx: sa.StepContext, trip: Trip, done: str | None) -> None:
        if self.undo_fails:
            raise RuntimeError("airline refuses refunds")


trip_saga = sa.Saga(
    "trip",
    [
        sa.Step(
            "hotel",
            participant="hotel",
            action="book",
            retry=sa.RetryPolicy(max_attempts=3, backoff=0.01),
        ),
        sa.Step("flight", participant="flight", action="fly"),
    ],
    input_type=Trip,
)


class Recorder:
    """A listener that keeps every notice (thread-safe: two runtime threads publish)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.notices: list[sa.Notice] = []

    def __call__(self, notice: sa.Notice) -> None:
        with self.lock:
            self.notices.append(notice)

    def of(self, saga_id: str) -> list[str]:
        with self.lock:
            return [
                n.type
                for n in self.notices
                if isinstance(n, sa.SagaNotice) and n.saga_id == saga_id
            ]


@pytest.mark.parametrize("mode", ["orchestration", "choreography"])
def test_a_listener_sees_every_event_before_the_outcome_is_known(mode: sa.Mode) -> None:
    heard = Recorder()
    with sa.Runtime.in_memory(
        participants=[Hotel(), Flight()], sagas=[trip_saga], listeners=[heard]
    ) as rt:
        run = rt.start(trip_saga, Trip("Rome", 2), mode=mode, saga_id="t-1")
        assert run.result(timeout=5).status == "completed"
        # Nothing to wait for: the end was published before the waiter woke.
        assert heard.of("t-1") == [
            e.type for e in rt.history("t-1") if e.source not in rt.participants
        ]
        assert heard.of("t-1")[0] == "SagaStarted"
        assert heard.of("t-1")[-1] == "SagaCompleted"
        final = [n for n in heard.notices if isinstance(n, sa.SagaNotice) and n.final]
        assert [(n.saga, n.status) for n in final] == [("trip", "completed")]
        steps = [
            n for n in heard.notices if isinstance(n, sa.SagaNotice) and n.type == "StepStarted"
        ]
        assert [(n.step, n.attempt) for n in steps] == [("hotel", 1), ("flight", 1)]


def test_the_log_tells_what_happened_and_why(caplog: pytest.LogCaptureFixture) -> None:
    hotel, flight = Hotel(), Flight()
    hotel.flaky, flight.undo_fails = 1, True
    with (
        caplog.at_level(logging.DEBUG, logger="sagactor"),
        sa.Runtime.in_memory(participants=[hotel, flight], sagas=[trip_saga]) as rt,
    ):
        outcome = rt.start(trip_saga, Trip("Atlantis", 1), saga_id="t-2").result(timeout=5)
    assert outcome.status == "compensated"  # the hotel was undone; the flight never happened
    mine = [r for r in caplog.records if getattr(r, "saga_id", None) == "t-2"]
    by_event = {r.saga_event: r for r in mine}  # type: ignore[attr-defined]
    assert by_event["SagaStarted"].levelno == logging.INFO
    assert by_event["StepRetrying"].levelno == logging.DEBUG
    assert "error=ConnectionError" in by_event["StepRetrying"].getMessage()
    assert by_event["StepFailed"].saga_step == "flight"  # type: ignore[attr-defined]
    assert "no flights to Atlantis" in by_event["StepFailed"].getMessage()
    assert by_event["SagaCompensated"].levelno == logging.INFO
    assert by_event["SagaCompensated"].saga_type == "trip"  # type: ignore[attr-defined]


def test_a_stuck_saga_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    flight = Flight()
    flight.undo_fails = True
    failing_later = sa.Saga(
        "trip-stuck",
        [
            sa.Step("flight", participant="flight", action="fly"),
            sa.Step("hotel", participant="hotel", action="book"),
        ],
        input_type=Trip,
    )
    hotel = Hotel()
    hotel.flaky = 99  # out of attempts: the flight must be undone, and that fails
    with (
        caplog.at_level(logging.INFO, logger="sagactor"),
        sa.Runtime.in_memory(participants=[hotel, flight], sagas=[failing_later]) as rt,
    ):
        outcome = rt.start(failing_later, Trip("Oslo", 1), saga_id="t-3").result(timeout=10)
    assert outcome.status == "stuck"
    stuck = [r for r in caplog.records if getattr(r, "saga_event", "") == "SagaStuck"]
    assert len(stuck) == 1
    assert stuck[0].levelno == logging.WARNING
    assert "airline refuses refunds" in stuck[0].getMessage()
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]  # INFO hides steps


def test_a_failing_listener_disturbs_nothing_and_can_be_removed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    heard = Recorder()

    def broken(notice: sa.Notice) -> None:
        raise ValueError("listener bug")

    with sa.Runtime.in_memory(participants=[Hotel(), Flight()], sagas=[trip_saga]) as rt:
        stop_broken = rt.listen(broken)
        stop_heard = rt.listen(heard)
        assert rt.start(trip_saga, Trip("Rome", 1), saga_id="a").result(timeout=5).status == (
            "completed"
        )
        assert heard.of("a")[-1] == "SagaCompleted"
        assert any("listener bug" in r.getMessage() or r.exc_info for r in caplog.records)
        stop_broken()
        stop_heard()
        rt.start(trip_saga, Trip("Rome", 1), saga_id="b").result(timeout=5)
        assert heard.of("b") == []
    with pytest.raises(sa.DefinitionError, match="not callable"):
        rt.listen("print")  # type: ignore[arg-type]


def test_many_sagas_each_end_once_in_journal_order() -> None:
    heard = Recorder()
    hotel = Hotel()
    with sa.Runtime.in_memory(
        participants=[hotel, Flight()], sagas=[trip_saga], listeners=[heard]
    ) as rt:
        trips = [Trip("Atlantis" if i % 3 == 0 else "Rome", i) for i in range(300)]
        runs = rt.start_many(trip_saga, trips)
        outcomes = [r.result(timeout=30) for r in runs]
    by_saga: dict[str, list[str]] = defaultdict(list)
    for n in heard.notices:
        if isinstance(n, sa.SagaNotice):
            by_saga[n.saga_id].append(n.type)
    assert len(by_saga) == 300
    for run, outcome in zip(runs, outcomes, strict=True):
        events = by_saga[run.id]
        assert events[0] == "SagaStarted"
        assert (
            events[-1]
            == {"completed": "SagaCompleted", "compensated": "SagaCompensated"}[outcome.status]
        )
        assert sum(e in ("SagaCompleted", "SagaCompensated", "SagaStuck") for e in events) == 1


def test_recovery_is_reported_with_what_it_resumed_and_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "trips.db"
    rt = sa.Runtime.open(db, participants=[Hotel(), Flight()], sagas=[trip_saga])
    rt.inject("hotel", "book", sa.Fault("delay", seconds=5))
    rt.start(trip_saga, Trip("Rome", 1), saga_id="in-flight")
    rt.crash()
    other = sa.Saga("other", [sa.Step("fly", participant="flight", action="fly")])
    rt = sa.Runtime.open(db, participants=[Hotel(), Flight()], sagas=[other])
    rt.inject("flight", "fly", sa.Fault("delay", seconds=5))
    rt.start(other, {"city": "x", "nights": 1}, saga_id="other-1")
    rt.crash()

    heard = Recorder()
    with caplog.at_level(logging.INFO, logger="sagactor"):
        rt = sa.Runtime.open(
            db, participants=[Hotel(), Flight()], sagas=[other], listeners=[heard]
        )  # "trip" is gone: its saga is quarantined, the other one resumes
        try:
            assert rt.run("other-1").result(timeout=5).status == "completed"
        finally:
            rt.close()
    (recovery,) = [n for n in heard.notices if isinstance(n, sa.RecoveryNotice)]
    assert recovery.resumed == ("other-1",)
    assert recovery.quarantined == ("in-flight",)
    assert recovery.ended >= recovery.started
    assert heard.of("other-1")[-1] == "SagaCompleted"
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 in-flight saga(s) resumed, 1 quarantined" in m for m in messages)
    assert any(
        r.levelno == logging.WARNING and "'in-flight'" in r.getMessage() for r in caplog.records
    )


def spans_of(exporter: InMemorySpanExporter) -> dict[str, list[object]]:
    found: dict[str, list[object]] = defaultdict(list)
    for span in exporter.get_finished_spans():
        found[span.name].append(span)
    return found


def test_spans_follow_sagas_attempts_and_compensations() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = SpanListener(provider)
    hotel = Hotel()
    hotel.flaky = 1
    with sa.Runtime.in_memory(
        participants=[hotel, Flight()], sagas=[trip_saga], listeners=[spans]
    ) as rt:
        rt.start(trip_saga, Trip("Atlantis", 1), saga_id="t-5").result(timeout=5)
        rt.start(trip_saga, Trip("Rome", 1), saga_id="t-6").result(timeout=5)
    assert spans.open_spans == 0  # nothing kept for ended sagas
    found = spans_of(exporter)
    sagas = {s.attributes["sagactor.saga_id"]: s for s in found["saga trip"]}  # type: ignore[attr-defined]
    assert sagas["t-5"].status.status_code is StatusCode.ERROR  # type: ignore[attr-defined]
    assert sagas["t-6"].status.status_code is StatusCode.UNSET  # type: ignore[attr-defined]
    hotel_attempts = [
        s
        for s in found["step hotel"]
        if s.attributes["sagactor.saga_id"] == "t-5"  # type: ignore[attr-defined]
    ]
    assert [s.attributes["sagactor.attempt"] for s in hotel_attempts] == [1, 2]  # type: ignore[attr-defined]
    assert hotel_attempts[0].status.status_code is StatusCode.ERROR  # type: ignore[attr-defined]
    assert "retrying" in hotel_attempts[0].status.description  # type: ignore[attr-defined]
    (undo,) = found["compensate hotel"]
    assert undo.parent.span_id == sagas["t-5"].context.span_id  # type: ignore[attr-defined]
    for span in hotel_attempts:
        assert span.parent.span_id == sagas["t-5"].context.span_id  # type: ignore[attr-defined]
        assert span.start_time >= sagas["t-5"].start_time  # type: ignore[attr-defined]
        assert span.end_time <= sagas["t-5"].end_time  # type: ignore[attr-defined]


def test_a_handlers_own_spans_nest_under_its_step() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("the-app")

    class Mailer(sa.Participant[None]):
        name = "mailer"

        @sa.action("send")
        def send(self, ctx: sa.StepContext, to: str) -> None:
            with tracer.start_as_current_span("smtp call"):
                pass

        @sa.action("asend")
        async def asend(self, ctx: sa.StepContext, to: str) -> None:
            with tracer.start_as_current_span("async smtp call"):
                pass

    mail = sa.Saga(
        "mail",
        [
            sa.Step("send", participant="mailer", action="send", compensable=False),
            sa.Step("asend", participant="mailer", action="asend", compensable=False),
        ],
    )
    with sa.Runtime.in_memory(
        participants=[Mailer()], sagas=[mail], listeners=[SpanListener(provider)]
    ) as rt:
        assert rt.start(mail, "ann@example.com").result(timeout=5).status == "completed"
    found = spans_of(exporter)
    (step,) = found["step send"]
    (smtp,) = found["smtp call"]
    assert smtp.parent.span_id == step.context.span_id  # type: ignore[attr-defined]
    assert smtp.context.trace_id == step.context.trace_id  # type: ignore[attr-defined]
    (astep,) = found["step asend"]
    (asmtp,) = found["async smtp call"]
    assert asmtp.parent.span_id == astep.context.span_id  # type: ignore[attr-defined]


def test_metrics_count_and_time_without_a_dependency() -> None:
    metrics = sa.Metrics()
    hotel = Hotel()
    hotel.flaky = 1
    with sa.Runtime.in_memory(
        participants=[hotel, Flight()], sagas=[trip_saga], listeners=[metrics]
    ) as rt:
        runs = rt.start_many(trip_saga, [Trip("Rome", 1), Trip("Atlantis", 1), Trip("Oslo", 2)])
        for run in runs:
            run.result(timeout=5)
        seen = metrics.snapshot()
    counts = seen["counts"]
    assert counts["sagas.trip.completed"] == 2
    assert counts["sagas.trip.compensated"] == 1
    assert counts["events.StepRetrying"] == 1
    assert counts["events.SagaStarted"] == 3
    assert seen["in_flight"] == 0
    assert seen["durations"]["trip"]["count"] == 3
    assert 0 <= seen["durations"]["trip"]["p50"] <= seen["durations"]["trip"]["max"]
