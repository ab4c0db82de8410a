"""In-memory shop sagas per second at 1 and 100 in flight, beside a bare-pykka baseline.

The baseline is what the same message flow costs with nothing but pykka: one coordinator
actor and four participant actors (``ThreadingActor``, like sagactor's), where a "saga" is the
chain coordinator -> participant -> coordinator, once per step, with ``tell`` only and a
``Future`` per saga for the caller, exactly the shape of sagactor's orchestration, minus the
state machine, the journal, the inbox, the participants' event-sourced state and the timers.
The ratio is therefore the price of everything sagactor adds, measured in the same process.

Both sides are driven the same way: "1 in flight" starts a saga and waits for its outcome
before the next; "100 in flight" keeps 100 sagas outstanding (a sliding window over the
public API: ``start`` a new one whenever the oldest finished).

Run it with ``python bench/bench_core.py`` (about 20-30 s); ``bench/run.py`` calls
:func:`measure` or :func:`main`.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import pykka

import sagactor as sa
from sagactor.examples.shop import Order, make_shop, order_saga

__all__ = ["Figure", "main", "measure"]

IN_FLIGHT = (1, 100)
STEPS = 4  # the shop saga: reserve, charge, ship, notify
WAIT = 60.0


@dataclass(frozen=True, slots=True)
class Figure:
    in_flight: int
    sagactor: float  # sagas/s
    pykka: float  # sagas/s

    @property
    def ratio(self) -> float:
        """sagactor's throughput as a fraction of bare pykka's."""
        return self.sagactor / self.pykka


# -- sagactor ---------------------------------------------------------------------------------


def _orders(count: int, start: int) -> Iterator[Order]:
    for n in range(start, start + count):
        yield Order(id=f"b{n}", customer=f"c{n % 50}", sku="sku-1", qty=1, amount=10)


class _Sagactor:
    def __init__(self) -> None:
        self.rt = sa.Runtime.in_memory(participants=make_shop())
        self.made = 0

    def run(self, count: int, in_flight: int) -> float:
        """Seconds to run ``count`` shop sagas with ``in_flight`` outstanding."""
        orders = _orders(count, self.made)
        self.made += count
        window: deque[sa.SagaRun] = deque()
        began = time.perf_counter()
        for order in orders:
            if len(window) >= in_flight:
                _check(window.popleft().result(WAIT))
            window.append(self.rt.start(order_saga, order))
        while window:
            _check(window.popleft().result(WAIT))
        return time.perf_counter() - began

    def close(self) -> None:
        self.rt.close()


def _check(outcome: sa.Outcome) -> None:
    if not outcome.ok:
        raise RuntimeError(f"a benchmark saga did not complete: {outcome}")


# -- bare pykka -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Start:
    saga: int
    done: Future[int]


@dataclass(frozen=True, slots=True)
class _Command:
    saga: int
    step: int
    reply_to: Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class _Reply:
    saga: int
    step: int


class _Participant(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.applied: dict[int, int] = {}

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Command):
            self.applied[message.saga] = message.step  # a token of state
            message.reply_to(_Reply(message.saga, message.step))


class _Coordinator(pykka.ThreadingActor):
    def __init__(self, participants: list[pykka.ActorRef[Any]]) -> None:
        super().__init__()
        self.participants = participants
        self.waiting: dict[int, Future[int]] = {}

    def on_receive(self, message: Any) -> None:
        if isinstance(message, _Start):
            self.waiting[message.saga] = message.done
            self._send(message.saga, 0)
        elif isinstance(message, _Reply):
            if message.step + 1 < len(self.participants):
                self._send(message.saga, message.step + 1)
            else:
                self.waiting.pop(message.saga).set_result(message.saga)

    def _send(self, saga: int, step: int) -> None:
        self.participants[step].tell(_Command(saga, step, self.actor_ref.tell))


class _Pykka:
    def __init__(self) -> None:
        self.participants = [_Participant.start() for _ in range(STEPS)]
        self.coordinator = _Coordinator.start(self.participants)
        self.made = 0

    def start(self) -> Future[int]:
        done: Future[int] = Future()
        self.coordinator.tell(_Start(self.made, done))
        self.made += 1
        return done

    def run(self, count: int, in_flight: int) -> float:
        window: deque[Future[int]] = deque()
        began = time.perf_counter()
        for _ in range(count):
            if len(window) >= in_flight:
                window.popleft().result(WAIT)
            window.append(self.start())
        while window:
            window.popleft().result(WAIT)
        return time.perf_counter() - began

    def close(self) -> None:
        refs: list[pykka.ActorRef[Any]] = [self.coordinator, *self.participants]
        for ref in refs:
            ref.stop()


# -- measuring --------------------------------------------------------------------------------


def _rate(run: Callable[[int, int], float], in_flight: int, seconds: float, rounds: int) -> float:
    """Median sagas/s over ``rounds`` rounds of about ``seconds`` each (after a calibration
    round that also warms up)."""
    probe = 50 if in_flight == 1 else 500
    per_saga = run(probe, in_flight) / probe
    count = max(in_flight * 2, int(seconds / per_saga))
    return statistics.median(count / run(count, in_flight) for _ in range(rounds))


def measure(seconds: float = 1.5, rounds: int = 3) -> list[Figure]:
    """Throughputs at each in-flight count, sagactor and bare pykka in the same process."""
    logging.getLogger("sagactor").setLevel(logging.WARNING)
    figures = []
    engine = _Sagactor()
    baseline = _Pykka()
    try:
        for in_flight in IN_FLIGHT:
            ours = _rate(engine.run, in_flight, seconds, rounds)
            bare = _rate(baseline.run, in_flight, seconds, rounds)
            figures.append(Figure(in_flight, ours, bare))
    finally:
        engine.close()
        baseline.close()
    return figures


def report(figures: list[Figure]) -> str:
    lines = [
        "bench_core: in-memory shop sagas (4 steps, orchestration) vs bare pykka "
        "(coordinator + 4 actors, same message chain)",
        f"{'in flight':>9}  {'sagactor sagas/s':>16}  {'bare pykka sagas/s':>18}  "
        f"{'sagactor/pykka':>14}",
    ]
    for f in figures:
        lines.append(
            f"{f.in_flight:>9}  {f.sagactor:>16,.0f}  {f.pykka:>18,.0f}  {f.ratio:>13.3f}x"
        )
    return "\n".join(lines)


def main() -> None:
    began = time.perf_counter()
    figures = measure()
    print(report(figures))
    print(
        f"(median of 3 rounds each; python {sys.version.split()[0]}, "
        f"pykka {version('pykka')}, sagactor {sa.__version__}; "
        f"{time.perf_counter() - began:.1f}s)"
    )


if __name__ == "__main__":
    main()
