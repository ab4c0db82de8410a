"""Deterministic simulation: the whole runtime on one thread, in a seeded order, on virtual time,
with seeded faults, crashes and restarts; then the invariants (see :func:`simulate`).

A seed decides everything: the order in which actors handle their mail and the disk commits
(:class:`~sagactor.actors.deterministic.SimulatedKinds`), which participant handlers fail, error
or run late, which messages arrive twice or late, which journal groups fail or find the disk
full, where the runtime dies and whether the power goes with it. The same seed twice gives the
same journal, record for record (timestamps included: virtual time).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import clock
from ..actor_messages import Command, Deliver, Published, Reply, SagaEnded
from ..actors.deterministic import SimulatedKinds
from ..actors.faults import Fault
from ..actors.participant import Participant
from ..crashpoints import CrashPoint
from ..errors import JournalWriteError, SagactorError
from ..names import Durability, Mode
from ..runtime import Runtime
from ..sagas.definition import Choreography, Saga
from .simdisk import SimJournal, Synchronous
from .siminvariants import SimulationReport, problems_after_crash, problems_at_end

__all__ = ["Faults", "SimJournal", "SimulationError", "SimulationReport", "simulate"]

Workload = Sequence[tuple[Saga | Choreography | str, Any]] | Callable[[random.Random], Any]
Check = Callable[[dict[str, Any]], list[str]]

COPYABLE = (Command, Reply, Deliver, Published)
"""What may arrive twice or late: a command, a reply (a published step event in step-list
choreography), a delivered event; never a journal's answer or an operator's request. A late
copy never overtakes a ``SagaEnded`` from its sender: the runtime tells a participant a saga
ended after every command of it (one sender's messages keep their order), and the
participant then forgets the saga's inbox records; that is the model's limit."""

_CRASH_POINTS = [CrashPoint.AFTER_COMMIT, CrashPoint.BEFORE_REPLY, CrashPoint.BEFORE_DISPATCH]


@dataclass(frozen=True, slots=True)
class Faults:
    """How often each fault is chosen by the seed (probabilities per simulation run, unless
    said otherwise).

    * ``participant``: per participant, a fault on one of its actions (fail, error, or a delay
      of up to ``max_delay`` virtual seconds), firing once or twice, or on every message when
      ``always`` (a fault that decides the same for every delivery: what the agreement of the
      two modes needs); injected in every run, the restarted ones too;
    * ``crash``: the first run dies once, at a crash point or between two scheduler steps (a
      disk step included); ``power_loss`` of those crashes take the power too, and ``torn`` of
      those fail in the middle of a journal group's write;
    * ``recovery_crash``: a restarted run (not the last) dies again while it re-sends;
    * ``restarts``: fresh runtimes on the surviving journal; the last one has no disk, crash or
      message fault (participant faults stay: they are the participants' behaviour);
    * ``write_error``: one of the first ``horizon`` journal groups fails;
    * ``disk_full``: from one of the first ``horizon`` groups, the disk is full for up to
      ``full_for`` virtual seconds (while it is full, the runtime reloads a refused saga
      every 50 ms and retries: each second full costs the simulation some hundred steps);
    * ``duplicate`` and ``late`` (per message told between actors, of the kinds in
      :data:`COPYABLE`): it arrives again right behind itself, or up to 30 steps later, after
      later messages of its sender.
    """

    participant: float = 0.3
    always: bool = False
    crash: float = 0.5
    power_loss: float = 0.3
    torn: float = 0.2
    recovery_crash: float = 0.3
    restarts: int = 3
    write_error: float = 0.2
    disk_full: float = 0.1
    full_for: float = 5.0
    duplicate: float = 0.03
    late: float = 0.03
    max_delay: float = 3600.0
    horizon: int = 60

    @staticmethod
    def none() -> Faults:
        return Faults(
            participant=0.0, crash=0.0, recovery_crash=0.0, write_error=0.0, disk_full=0.0,
            duplicate=0.0, late=0.0,
        )  # fmt: skip

    @staticmethod
    def agreeing() -> Faults:
        """The faults under which both modes must agree: those that do not depend on which
        message meets them first (participant faults on every message, crashes, copies), not
        the counted ones (a fault firing once, a write error, a full disk)."""
        return Faults(always=True, write_error=0.0, disk_full=0.0)


class SimulationError(SagactorError):
    """An invariant broke under a seed; the message says which and how to replay it."""

    def __init__(self, seed: int, problems: list[str], events: Sequence[str] = ()) -> None:
        self.seed = seed
        self.problems = problems
        self.events = list(events)
        lines = "\n  ".join(problems)
        chosen = f"\n  (faults chosen: {'; '.join(events)})" if events else ""
        super().__init__(f"simulation failed, replay with seed={seed}:\n  {lines}{chosen}")


@dataclass(slots=True)
class _Setup:
    """What every run of one simulation shares."""

    participants: Callable[[], Sequence[Participant[Any]]]
    sagas: Sequence[Saga | Choreography]
    pairs: list[tuple[Any, Any]]
    faults: Faults
    report: SimulationReport
    rng: random.Random
    plan: list[tuple[str, str, Fault]] = field(default_factory=list)

    def saga_ids(self) -> list[str]:
        return [f"w{index}" for index in range(len(self.pairs))]


def simulate(
    participants: Callable[[], Sequence[Participant[Any]]],
    sagas: Sequence[Saga | Choreography],
    workload: Workload,
    *,
    seed: int,
    faults: Faults | None = None,
    check: Check | None = None,
    mode: Mode = "orchestration",
    durability: Durability = "full",
    synchronous: Synchronous = "full",
    max_steps: int = 200_000,
) -> SimulationReport:
    """Run ``workload`` (``(saga, input)`` pairs, or a function of a seeded ``random.Random``
    giving them; the i-th saga's id is ``w<i>``) in ``mode`` over fresh ``participants()``
    under ``seed``, with seeded ``faults``, restarting after crashes (each restart starts again
    the sagas whose start was lost), to quiescence. Then it checks what the runtime promises
    under ``durability`` and ``synchronous`` (see :mod:`sagactor.testing.siminvariants`):
    every saga ended; no effect applied twice; a compensated saga's effects net zero; nothing
    acknowledged lost; no reported outcome changed; and ``check(states)`` (a list of problems).
    Raises :class:`SimulationError` (its message has ``seed=...``) on any violation."""
    faults = Faults() if faults is None else faults
    rng = random.Random(seed)
    journal = SimJournal(rng.getrandbits(64), synchronous=synchronous)
    report = SimulationReport(seed, journal, mode, durability)
    setup = _Setup(participants, sagas, [], faults, report, rng)
    _plan_disk(setup)
    virtual = clock.VirtualClock()
    problems: list[str] = []
    with clock.use_clock(virtual), clock.use_ids(random.Random(rng.getrandbits(64))):
        setup.pairs = list(workload(rng) if callable(workload) else workload)
        _plan_participants(setup)
        run = 0
        while True:
            last = run >= faults.restarts
            if last:
                journal.heal()
            kinds = SimulatedKinds(rng.getrandbits(64), virtual)
            rt = _one_run(setup, kinds, run, last, max_steps)
            report.copies += kinds.sim.copies
            if rt is not None and not rt.crashed:
                break
            if rt is not None:
                rt.close()
            elif last:  # healed, yet it cannot reopen: nothing more to simulate
                raise SimulationError(seed, ["the last restart could not reopen"], report.events)
            report.restarts += 1
            run += 1
            problems += problems_after_crash(report)
        try:
            problems += problems_at_end(rt, report, setup.saga_ids(), check)
        finally:
            rt.close()
    if problems:
        raise SimulationError(seed, problems, report.events)
    return report


def _plan_disk(setup: _Setup) -> None:
    rng, faults, journal, events = (
        setup.rng,
        setup.faults,
        setup.report.journal,
        setup.report.events,
    )
    if rng.random() < faults.write_error:
        journal.fail_at.add(rng.randint(1, faults.horizon))
        events.append(f"write error at group {min(journal.fail_at)}")
    if rng.random() < faults.disk_full:
        journal.full_at = rng.randint(1, faults.horizon)
        journal.full_for = rng.uniform(1.0, faults.full_for)
        events.append(f"disk full at group {journal.full_at} for {journal.full_for:.0f}s")


def _plan_participants(setup: _Setup) -> None:
    rng, faults = setup.rng, setup.faults
    for participant in setup.participants():
        if rng.random() >= faults.participant:
            continue
        actions = sorted(type(participant)._actions)
        if not actions:
            continue
        action = rng.choice(actions)
        kind = rng.choice(["fail", "error", "delay"])
        seconds = rng.uniform(0, faults.max_delay) if kind == "delay" else 0.0
        times = None if faults.always else rng.randint(1, 2)
        fault = Fault(kind, times=times, seconds=seconds)  # type: ignore[arg-type]
        setup.plan.append((participant.participant_name, action, fault))
        setup.report.events.append(f"{fault.describe()} on {participant.participant_name}.{action}")


def _one_run(
    setup: _Setup, kinds: SimulatedKinds, run: int, last: bool, max_steps: int
) -> Runtime | None:
    """One runtime on the journal: faults, a planned crash, recovery, the workload, quiet."""
    report, rng, faults = setup.report, setup.rng, setup.faults
    journal = report.journal
    kinds.sim.devices.append(journal)
    if not last and (faults.duplicate or faults.late):
        copies = random.Random(rng.getrandbits(64))
        kinds.sim.copier = lambda message: _copy(copies, faults, message)
        kinds.sim.barrier = lambda message: isinstance(message, SagaEnded)
    rt = Runtime(
        journal,
        participants=setup.participants(),
        sagas=setup.sagas,
        recover=False,
        kinds=kinds,
        durability=report.durability,
        listeners=[report.watch],
    )
    for name, action, fault in setup.plan:
        fresh = Fault(fault.kind, times=fault.times, seconds=fault.seconds)
        rt.inject(name, action, fresh)
    chance = faults.crash if run == 0 else faults.recovery_crash
    if not last and rng.random() < chance:
        _plan_crash(setup, rt, kinds, run)
    try:
        rt.recover()
        for saga_id, (saga, value) in zip(setup.saga_ids(), setup.pairs, strict=True):
            for _ in range(rng.randrange(8)):
                kinds.step()
            if rt.crashed:
                break
            if journal.last_seq(f"saga/{saga_id}") == 0:  # its start never reached the disk
                rt.engine.submit(saga, [value], [saga_id], report.mode)
                report.outcomes.setdefault(saga_id, "running")
    except JournalWriteError as error:  # as over SQLite: a full disk refuses the reopening
        if rt.crashed:
            raise
        report.events.append(f"run {run}: reopening refused ({error}); retried a minute later")
        rt.close()
        kinds.clock.advance_to(kinds.clock() + 60.0)
        return None
    except SagactorError as error:  # the runtime died under a crash while recovering
        report.events.append(f"run {run} died: {type(error).__name__}")
        if not rt.crashed:
            raise
    ran = kinds.run_until_quiet(max_steps)
    report.steps += ran
    if ran >= max_steps:
        report.events.append(f"run {run}: not quiet after {max_steps} steps")
    # A planned crash that never came must not come while the invariants are read.
    kinds.sim.on_step, journal.on_torn, journal.torn_at = None, None, 0
    journal.power_loss = False
    rt.crash_plan.disarm()
    return rt


def _plan_crash(setup: _Setup, rt: Runtime, kinds: SimulatedKinds, run: int) -> None:
    rng, faults, report = setup.rng, setup.faults, setup.report
    journal = report.journal
    power = rng.random() < faults.power_loss
    what = "power loss" if power else "crash"
    choice = rng.random()
    if power and choice < faults.torn:
        journal.torn_at = journal.groups + rng.randint(1, 20)
        journal.on_torn = rt.crash
        report.events.append(f"run {run}: power loss in the middle of group {journal.torn_at}")
        return

    def crash() -> None:
        journal.power_loss = power
        rt.crash()

    if run > 0 and choice < 0.5:  # while recovery re-sends
        hit = rng.randint(1, 3)
        rt.arm(CrashPoint.MID_RECOVERY, hit)
        journal.power_loss = power
        report.events.append(f"run {run}: {what} at {CrashPoint.MID_RECOVERY} hit {hit}")
    elif choice < 0.5:
        point, hit = rng.choice(_CRASH_POINTS), rng.randint(1, 8)
        rt.arm(point, hit)
        journal.power_loss = power
        report.events.append(f"run {run}: {what} at {point} hit {hit}")
    else:
        at = rng.randint(1, 12 * max(1, len(setup.pairs)) if run == 0 else 30)
        start = kinds.sim.steps
        kinds.sim.on_step = lambda n: crash() if n == start + at else None
        report.events.append(f"run {run}: {what} after scheduler step {at}")


def _copy(rng: random.Random, faults: Faults, message: Any) -> int | None:
    """Whether ``message`` arrives again: None (no), 0 (a duplicate), n (n steps late)."""
    if not isinstance(message, COPYABLE):
        return None
    draw = rng.random()
    if draw < faults.duplicate:
        return 0
    if draw < faults.duplicate + faults.late:
        return rng.randint(1, 30)
    return None
