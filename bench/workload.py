"""The bench's workload: the shop's 4-step saga shape over participants of the bench's own.

Four participants (stock, ledger, carrier, mailer) with bounded state (counters), each step
recording one change and returning a small receipt, like the shop's reserve, charge (with a
retry policy), ship and notify (not compensable). Bounded state keeps memory figures about the
runtime, not about the participants. The same shape runs on DBOS (:mod:`bench.bench_dbos`) and
as a bare pykka chain (:mod:`bench.baselines`).

Two ways to drive it, both over the public API: ``threads`` (``in_flight`` caller threads, each
starting a saga with ``Runtime.start``, which returns once the start is journaled, like DBOS's
``start_workflow``, and waiting for its end: the shape of the DBOS comparison) and ``window`` (one
driver thread keeping ``in_flight`` sagas outstanding, each started with
``Runtime.start_nowait``, a tell and a completion, like the bare pykka chain's ``tell`` and
``Future``: the shape of the pykka comparison).
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

import msgspec

import sagactor as sa

__all__ = [
    "SAGA",
    "InlineWorker",
    "Job",
    "Worker",
    "latencies",
    "open_durable",
    "open_memory",
    "participants",
    "threads",
    "window",
]

WAIT = 120.0
NAMES = ("stock", "ledger", "carrier", "mailer")


class Job(msgspec.Struct, frozen=True):
    n: int


class Receipt(msgspec.Struct, frozen=True):
    key: str
    n: int


class Bumped(msgspec.Struct, frozen=True):
    by: int


class Counts(msgspec.Struct):
    done: int = 0
    undone: int = 0


class Worker(sa.Participant[Counts]):
    """One step's participant: counts what it did and undid. A closed ``gate`` holds its
    handler (the memory bench keeps sagas in flight that way)."""

    def __init__(self, name: str, gate: threading.Event | None = None) -> None:
        self.name = name
        self.gate = gate

    def initial_state(self) -> Counts:
        return Counts()

    @sa.action("work")
    def work(self, ctx: sa.StepContext, job: Job) -> Receipt:
        if self.gate is not None:
            self.gate.wait()
        ctx.record(Bumped(1))
        return Receipt(ctx.idempotency_key, job.n)

    @sa.compensation("work")
    def undo(self, ctx: sa.StepContext, job: Job, done: Receipt) -> None:
        ctx.record(Bumped(-1))

    @sa.evolve
    def _bumped(self, state: Counts, change: Bumped) -> None:
        if change.by > 0:
            state.done += 1
        else:
            state.undone += 1


SAGA = sa.Saga(
    "bench-order",
    steps=[
        sa.Step("reserve", participant="stock", action="work"),
        sa.Step(
            "charge",
            participant="ledger",
            action="work",
            retry=sa.RetryPolicy(max_attempts=3, backoff=0.01),
        ),
        sa.Step("ship", participant="carrier", action="work"),
        sa.Step("notify", participant="mailer", action="work", compensable=False),
    ],
    input_type=Job,
)


class InlineWorker(Worker):
    """The same participant declared ``inline`` (its handler never blocks): its host runs on
    the runtime's scheduler thread, not on a thread of its own."""

    inline = True


def participants(
    gate: threading.Event | None = None, *, inline: bool = False
) -> list[sa.Participant[Any]]:
    """Fresh participants; ``gate`` holds the first step's handler while it is clear (a gate
    blocks, so it is never given to ``inline`` participants)."""
    if inline:
        return [InlineWorker(name) for name in NAMES]
    return [Worker(name, gate if name == NAMES[0] else None) for name in NAMES]


def open_memory(*, inline: bool = False, **options: Any) -> sa.Runtime:
    return sa.Runtime.in_memory(participants=participants(inline=inline), sagas=[SAGA], **options)


def open_durable(
    path: Path,
    synchronous: Literal["full", "normal"] = "full",
    *,
    inline: bool = False,
    **options: Any,
) -> sa.Runtime:
    return sa.Runtime.open(
        path,
        synchronous=synchronous,
        participants=participants(inline=inline),
        sagas=[SAGA],
        **options,
    )


_numbers = itertools.count()  # unique saga inputs across every run of one process


def start(rt: sa.Runtime) -> sa.SagaRun:
    return rt.start(SAGA, Job(next(_numbers)))


def start_nowait(rt: sa.Runtime) -> sa.SagaRun:
    return rt.start_nowait(SAGA, Job(next(_numbers)))


def _check(outcome: sa.Outcome) -> None:
    if not outcome.ok:
        raise RuntimeError(f"a bench saga did not complete: {outcome}")


def threads(rt: sa.Runtime, in_flight: int, total: int) -> float:
    """Sagas/s with ``in_flight`` caller threads, each starting a saga and waiting for it."""
    left = [total]
    lock = threading.Lock()
    failures: list[BaseException] = []

    def caller() -> None:
        try:
            while True:
                with lock:
                    if left[0] == 0:
                        return
                    left[0] -= 1
                _check(start(rt).result(WAIT))
        except BaseException as error:  # noqa: BLE001 - reported by the driving thread
            failures.append(error)

    callers = [threading.Thread(target=caller) for _ in range(in_flight)]
    began = time.perf_counter()
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise failures[0]
    return total / elapsed


def window(rt: sa.Runtime, in_flight: int, total: int) -> float:
    """Sagas/s with one driver keeping ``in_flight`` sagas outstanding (started without
    waiting for their acceptance: the bare pykka chain's driver does not wait either)."""
    outstanding: deque[sa.SagaRun] = deque()
    began = time.perf_counter()
    for _ in range(total):
        if len(outstanding) >= in_flight:
            _check(outstanding.popleft().result(WAIT))
        outstanding.append(start_nowait(rt))
    while outstanding:
        _check(outstanding.popleft().result(WAIT))
    return total / (time.perf_counter() - began)


def latencies(rt: sa.Runtime, count: int) -> tuple[float, float]:
    """p50 and p99 in ms of one saga at a time (start to outcome)."""
    samples = []
    for _ in range(count):
        began = time.perf_counter()
        _check(start(rt).result(WAIT))
        samples.append(time.perf_counter() - began)
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[98] * 1000
