"""What :func:`~sagactor.testing.simulate` checks, and under which promise.

What each setting promises, and so what is checked:

* ``durability="full"`` with ``synchronous="full"`` (the default): the runtime acts on nothing
  before its record is answered by the journal, and an answered record is on disk. After any
  crash or power loss: every saga whose start was acknowledged is in the journal; every
  outcome reported (a final notice) is the journal's outcome.
* ``synchronous="normal"``: the same after a process crash; a power loss may lose the last
  answered groups (acknowledged starts and reported outcomes among them), so after one those
  two checks are off. The journal stays whole (groups are all or nothing) and everything below
  still holds.
* ``durability="relaxed"``: only a saga's start and end wait for the disk; a crash may lose
  the steps in between, which then run again. Acknowledged starts and reported outcomes are
  still never lost (with ``synchronous="full"``), and everything below holds, because a
  participant's change and its inbox record are lost together or kept together.

Always, once quiet after the last restart: every saga of the workload whose start reached the
journal ended (completed, compensated or stuck); no participant state's ``applied`` or
``undone`` map counts a key twice; a compensated saga's effects net zero where the state
counts undoing (``undone``); a torn journal group left nothing readable; the user's check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..names import Durability, Mode, saga_stream
from ..observe import Notice, SagaNotice
from .simdisk import SimJournal

if TYPE_CHECKING:
    from ..runtime import Runtime

__all__ = ["SimulationReport", "problems_after_crash", "problems_at_end"]


@dataclass(slots=True)
class SimulationReport:
    """What one seed did: the journal (compare two of them for determinism) and the outcomes."""

    seed: int
    journal: SimJournal
    mode: Mode = "orchestration"
    durability: Durability = "full"
    outcomes: dict[str, str] = field(default_factory=dict)  # saga id -> final status
    states: dict[str, Any] = field(default_factory=dict)  # participant -> final state
    steps: int = 0
    restarts: int = 0
    copies: int = 0  # messages delivered twice or late
    acknowledged: set[str] = field(default_factory=set)  # starts answered as durable
    reported: dict[str, str] = field(default_factory=dict)  # ends published as durable
    events: list[str] = field(default_factory=list)  # the faults chosen, in order

    def watch(self, notice: Notice) -> None:
        """A listener: what the runtime told its users (durable starts and ends)."""
        if isinstance(notice, SagaNotice):
            if notice.type == "SagaStarted":
                self.acknowledged.add(notice.saga_id)
            if notice.final:
                self.reported[notice.saga_id] = str(notice.status)


def _may_lose(report: SimulationReport) -> bool:
    """Whether the journal may have lost answered records (a power loss under "normal")."""
    return report.journal.synchronous == "normal" and report.journal.power_losses > 0


def problems_after_crash(report: SimulationReport) -> list[str]:
    """Read the journal as the crash left it: nothing acknowledged or reported is gone."""
    journal = report.journal
    problems = list(journal.problems)
    journal.problems.clear()
    if _may_lose(report):
        return problems
    for saga_id in sorted(report.acknowledged):
        if journal.last_seq(saga_stream(saga_id)) == 0:
            problems.append(f"saga {saga_id}: its start was acknowledged, a crash lost it")
    for saga_id, status in sorted(report.reported.items()):
        row = journal.saga_row(saga_id)
        if row is None or row.status != status:
            found = "nothing" if row is None else row.status
            problems.append(
                f"saga {saga_id}: reported {status}, after a crash the journal has {found}"
            )
    return problems


def problems_at_end(
    rt: Runtime,
    report: SimulationReport,
    saga_ids: list[str],
    check: Callable[[dict[str, Any]], list[str]] | None,
) -> list[str]:
    """Once quiet after the last restart: the guarantees, then the user's ``check``."""
    problems = problems_after_crash(report)
    for saga_id in saga_ids:
        if rt.journal.last_seq(saga_stream(saga_id)) == 0:
            report.outcomes.pop(saga_id, None)  # its start was refused (a write failed)
            continue
        status = rt.status(saga_id).status
        report.outcomes[saga_id] = str(status)
        if not status.terminal:
            problems.append(f"saga {saga_id} never ended: {status} after quiescence")
    states = {name: rt.state(name) for name in rt.engine.catalog.refs}
    report.states = states
    for name, state in states.items():
        applied: dict[str, int] = getattr(state, "applied", {})
        undone: dict[str, int] = getattr(state, "undone", {})
        for key in sorted({**applied, **undone}):
            if applied.get(key, 0) > 1 or undone.get(key, 0) > 1:
                problems.append(f"{name} applied or undid {key} more than once")
            saga_id = key.partition("/")[0]
            # Net zero only where the state counts undoing too (CountingLedger's does).
            compensated = report.outcomes.get(saga_id) == "compensated"
            if (
                hasattr(state, "undone")
                and compensated
                and applied.get(key, 0) != undone.get(key, 0)
            ):
                problems.append(f"{name}: {key} of compensated saga {saga_id} does not net zero")
    if check is not None:
        problems.extend(check(states))
    return problems
