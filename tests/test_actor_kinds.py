"""The actor kinds: pykka's API (tell, ask, stop) over one thread per actor or one scheduler.

A kind decides only where messages run; these tests hold the rules every kind must keep:
order per sender, ask replies and errors, stop answering what is left, and a BaseException in
one actor stopping that actor alone (never pykka's stop-everything).
"""

from __future__ import annotations

import threading
from typing import Any

import pykka
import pytest

from sagactor.actors.kinds import ActorKind, KindActor, SchedulerKind, ThreadKind


class Recorder(KindActor):
    def __init__(self, kind: ActorKind, seen: list[Any]) -> None:
        super().__init__(kind)
        self.seen = seen
        self.started_on: str = ""

    def on_start(self) -> None:
        self.started_on = threading.current_thread().name

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        if message == "exit":
            raise SystemExit(3)
        self.seen.append(message)
        return ("echo", message)


@pytest.fixture(params=["scheduler", "thread"])
def kind(request: pytest.FixtureRequest) -> Any:
    made: ActorKind = SchedulerKind() if request.param == "scheduler" else ThreadKind()
    yield made
    made.close()


def test_tells_arrive_in_order_and_asks_are_answered(kind: ActorKind) -> None:
    seen: list[Any] = []
    ref = Recorder.start(kind, seen)
    for n in range(1000):
        ref.tell(n)
    assert ref.ask("last", timeout=5) == ("echo", "last")
    assert seen == [*range(1000), "last"]
    ref.stop()


def test_an_ask_gets_the_handlers_exception(kind: ActorKind) -> None:
    ref = Recorder.start(kind, [])
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=5)
    assert ref.ask(1, timeout=5) == ("echo", 1)  # the actor lives on
    ref.stop()


def test_base_exception_stops_only_that_actor(kind: ActorKind) -> None:
    victim = Recorder.start(kind, [])
    bystander = Recorder.start(kind, [])
    victim.tell("exit")
    assert bystander.ask("still here", timeout=5) == ("echo", "still here")
    victim.actor_stopped.wait(5)
    assert not victim.is_alive()
    with pytest.raises(pykka.ActorDeadError):
        victim.ask(1, timeout=5)
    bystander.stop()


def test_many_actors_share_one_scheduler_thread() -> None:
    kind = SchedulerKind(name="one-thread")
    try:
        refs = [Recorder.start(kind, []) for _ in range(50)]
        names = {ref.proxy().started_on.get(timeout=5) for ref in refs}
        assert names == {"one-thread"}
        for ref in refs:
            ref.stop(block=True, timeout=5)
        assert not any(ref.is_alive() for ref in refs)
    finally:
        kind.close()


def test_stop_answers_asks_left_in_the_inbox(kind: ActorKind) -> None:
    gate = threading.Event()

    class Slow(KindActor):
        def on_receive(self, message: Any) -> Any:
            gate.wait(5)
            return message

    ref = Slow.start(kind)
    first = ref.ask(1, block=False)
    stop = ref.ask(pykka.messages._ActorStop(), block=False)
    pending = ref.ask(2, block=False)
    gate.set()
    assert first.get(timeout=5) == 1
    stop.get(timeout=5)
    with pytest.raises(pykka.ActorDeadError):
        pending.get(timeout=5)
