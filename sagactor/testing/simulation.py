"""Deterministic simulation: the whole runtime on one thread, in a seeded order, on virtual time,
with seeded faults, crashes and restarts; then the invariants (see :func:`simulate`).

A seed decides everything: the order in which actors handle their mail
(:class:`~sagactor.actors.deterministic.SimulatedKinds`), the saga ids, which participant
handlers fail, error or run late, which journal writes fail, where the runtime dies. The same
seed twice gives the same journal, record for record (timestamps included: virtual time).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import clock
from ..actors.deterministic import SimulatedKinds
from ..actors.faults import Fault
from ..actors.participant import Participant
from ..crashpoints import CrashPoint, SimulatedCrash
from ..errors import SagactorError
from ..names import saga_stream
from ..persistence.journal import Record
from ..persistence.memory import MemoryJournal
from ..runtime import Runtime
from ..sagas.definition import Choreography, Saga

__all__ = ["Faults", "SimJournal", "SimulationError", "SimulationReport", "simulate"]

Workload = Sequence[tuple[Saga | Choreography | str, Any]] | Callable[[random.Random], Any]
Check = Callable[[dict[str, Any]], list[str]]


class SimJournal(MemoryJournal):
    """The in-memory journal with seeded write errors: the appends numbered in ``fail_at``
    (counting from 1) fail with an I/O error, as a full or failing disk would.

    What it does not simulate: lost unsynced commits and torn groups (every append here is
    durable once answered), slow disks. ``heal()`` stops the errors (the final restart)."""

    def __init__(self, fail_at: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        super().__init__()
        self.fail_at = set(fail_at)
        self.appends = 0
        self.failed = 0
        self.fault = self._maybe_fail

    def _maybe_fail(self, records: Sequence[Record]) -> None:
        self.appends += 1
        if self.appends in self.fail_at:
            self.failed += 1
            raise OSError(f"simulated write error at append {self.appends}")

    def heal(self) -> None:
        self.fail_at.clear()


@dataclass(frozen=True, slots=True)
class Faults:
    """How often each fault is chosen by the seed (probabilities per simulation run).

    * ``participant``: per participant, a fault on one of its actions (fail, error, or a delay
      of up to ``max_delay`` virtual seconds), firing once or twice;
    * ``crash``: the runtime dies once, at a crash point or between two scheduler steps, and a
      fresh runtime recovers on the surviving journal (up to ``restarts`` times);
    * ``write_error``: one of the first ``horizon`` journal appends fails.
    """

    participant: float = 0.3
    crash: float = 0.5
    write_error: float = 0.2
    restarts: int = 2
    max_delay: float = 3600.0
    horizon: int = 60

    @staticmethod
    def none() -> Faults:
        return Faults(participant=0.0, crash=0.0, write_error=0.0)


class SimulationError(SagactorError):
    """An invariant broke under a seed; the message says which and how to replay it."""

    def __init__(self, seed: int, problems: list[str]) -> None:
        self.seed = seed
        self.problems = problems
        lines = "\n  ".join(problems)
        super().__init__(f"simulation failed, replay with seed={seed}:\n  {lines}")


@dataclass(slots=True)
class SimulationReport:
    """What one seed did: the journal (compare two of them for determinism) and the outcomes."""

    seed: int
    journal: SimJournal
    outcomes: dict[str, str] = field(default_factory=dict)  # saga id -> final status
    steps: int = 0
    restarts: int = 0
    events: list[str] = field(default_factory=list)  # the faults chosen, in order


def simulate(
    participants: Callable[[], Sequence[Participant[Any]]],
    sagas: Sequence[Saga | Choreography],
    workload: Workload,
    *,
    seed: int,
    faults: Faults | None = None,
    check: Check | None = None,
    max_steps: int = 200_000,
) -> SimulationReport:
    """Run ``workload`` (``(saga, input)`` pairs, or a function of a seeded ``random.Random``
    giving them) over fresh ``participants()`` under ``seed``, with seeded ``faults``; run to
    quiescence (restarting after crashes, the last run without faults), then check that every
    saga whose start was journaled ended, that no participant applied an effect twice (states
    with an ``applied`` map of key -> count, as :class:`CountingLedger`'s and the shop's), that
    a compensated saga's ledger effects net zero, and ``check(states)`` (a list of problems).
    Raises :class:`SimulationError` (its message has ``seed=...``) on any violation."""
    faults = Faults() if faults is None else faults
    rng = random.Random(seed)
    kinds = SimulatedKinds(rng.getrandbits(64))
    report = SimulationReport(seed, SimJournal())
    if rng.random() < faults.write_error:
        report.journal.fail_at.add(rng.randint(1, faults.horizon))
        report.events.append(f"write error at append {min(report.journal.fail_at)}")
    with clock.use_clock(kinds.clock), clock.use_ids(random.Random(rng.getrandbits(64))):
        pairs = list(workload(rng) if callable(workload) else workload)
        rt = _first_run(participants, sagas, pairs, rng, kinds, faults, report)
        while rt is None or rt.crashed:
            if rt is not None:
                rt.close()
            report.restarts += 1
            last = report.restarts >= faults.restarts
            if last:
                report.journal.heal()
            kinds = SimulatedKinds(rng.getrandbits(64), kinds.clock)
            rt = _recover(participants, sagas, report, kinds)
            if rt is not None:
                report.steps += kinds.run_until_quiet(max_steps)
        try:
            problems = _problems(rt, report, check)
        finally:
            rt.close()
    if problems:
        raise SimulationError(seed, problems)
    return report


def _first_run(
    participants: Callable[[], Sequence[Participant[Any]]],
    sagas: Sequence[Saga | Choreography],
    pairs: list[tuple[Any, Any]],
    rng: random.Random,
    kinds: SimulatedKinds,
    faults: Faults,
    report: SimulationReport,
) -> Runtime | None:
    registered = participants()
    rt = Runtime.in_memory(
        journal=report.journal, participants=registered, sagas=sagas, kinds=kinds
    )
    for participant in registered:
        if rng.random() < faults.participant:
            actions = sorted(type(participant)._actions)
            if not actions:
                continue
            action = rng.choice(actions)
            kind = rng.choice(["fail", "error", "delay"])
            seconds = rng.uniform(0, faults.max_delay) if kind == "delay" else 0.0
            fault = Fault(kind, times=rng.randint(1, 2), seconds=seconds)  # type: ignore[arg-type]
            rt.inject(participant.participant_name, action, fault)
            report.events.append(f"{fault.describe()} on {participant.participant_name}.{action}")
    if rng.random() < faults.crash:
        if rng.random() < 0.5:
            point = rng.choice(
                [CrashPoint.AFTER_COMMIT, CrashPoint.BEFORE_REPLY, CrashPoint.BEFORE_DISPATCH]
            )
            hit = rng.randint(1, 8)
            rt.arm(point, hit)
            report.events.append(f"crash at {point} hit {hit}")
        else:
            at = rng.randint(1, 12 * max(1, len(pairs)))
            kinds.sim.on_step = lambda n: rt.crash() if n == at else None
            report.events.append(f"crash after scheduler step {at}")
    for saga, value in pairs:
        for _ in range(rng.randrange(8)):
            kinds.step()
        if rt.crashed:
            break
        run = rt.start_nowait(saga, value)
        report.outcomes[run.id] = "running"
    report.steps += kinds.run_until_quiet()
    return rt


def _recover(
    participants: Callable[[], Sequence[Participant[Any]]],
    sagas: Sequence[Saga | Choreography],
    report: SimulationReport,
    kinds: SimulatedKinds,
) -> Runtime | None:
    try:
        return Runtime.in_memory(
            journal=report.journal, participants=participants(), sagas=sagas, kinds=kinds
        )
    except (SimulatedCrash, SagactorError) as error:
        report.events.append(f"recovery failed: {error}")
        return None


def _problems(rt: Runtime, report: SimulationReport, check: Check | None) -> list[str]:
    problems: list[str] = []
    journaled = [s for s in report.outcomes if rt.journal.last_seq(saga_stream(s)) > 0]
    for saga_id in list(report.outcomes):
        if saga_id not in journaled:
            del report.outcomes[saga_id]  # its start never reached the journal: not acknowledged
    for saga_id in journaled:
        status = rt.status(saga_id).status
        report.outcomes[saga_id] = str(status)
        if not status.terminal:
            problems.append(f"saga {saga_id} never ended: {status} after quiescence")
    states = {name: rt.state(name) for name in rt.engine.catalog.refs}
    for name, state in states.items():
        applied: dict[str, int] = getattr(state, "applied", {})
        undone: dict[str, int] = getattr(state, "undone", {})
        for key in sorted({**applied, **undone}):
            if applied.get(key, 0) > 1 or undone.get(key, 0) > 1:
                problems.append(f"{name} applied or undid {key} more than once")
            saga_id = key.partition("/")[0]
            if saga_id not in report.outcomes:
                continue
            # Net zero only where the state counts undoing too (CountingLedger's does).
            compensated = hasattr(state, "undone") and report.outcomes[saga_id] == "compensated"
            if compensated and applied.get(key, 0) != undone.get(key, 0):
                problems.append(f"{name}: {key} of compensated saga {saga_id} does not net zero")
    if check is not None:
        problems.extend(check(states))
    return problems
