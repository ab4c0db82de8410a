"""The parts of a saga: a :class:`Step`, its :class:`RetryPolicy`, and a :class:`Parallel`
group of steps that run at once; and how a saga's elements become its stages."""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError

__all__ = [
    "PAUSE_PARTICIPANT",
    "Parallel",
    "Pause",
    "RetryPolicy",
    "Sleep",
    "Step",
    "WaitFor",
    "check_groups",
    "stages_of",
]

PAUSE_PARTICIPANT = "sagactor"  # the participant a Sleep or WaitFor step names: none runs it


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a step is tried after technical errors, and how long to wait between tries.

    ``StepFailed`` is never retried. ``retry_on`` narrows which exception types retry; any other
    technical error fails the step at once.
    """

    max_attempts: int = 1
    backoff: float = 0.0
    multiplier: float = 2.0
    max_backoff: float = 30.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise DefinitionError(
                "RetryPolicy",
                f"max_attempts must be at least 1, not {self.max_attempts}",
                kind="setting",
            )
        if self.backoff < 0 or self.multiplier < 1 or self.max_backoff < 0:
            raise DefinitionError(
                "RetryPolicy",
                "backoff and max_backoff must be >= 0 and multiplier >= 1",
                kind="setting",
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        return min(self.backoff * self.multiplier ** (attempt - 1), self.max_backoff)


@dataclass(frozen=True, slots=True)
class Pause:
    """What a :func:`Sleep` or :func:`WaitFor` step waits for: a time (``seconds`` after the
    step is reached, or the wall-clock ``until``), or the signal ``signal`` (at most
    ``timeout`` seconds; its payload decodes as ``type``)."""

    seconds: float | None = None
    until: float | None = None
    signal: str = ""
    timeout: float | None = None
    type: Any = None

    def due(self, now: float) -> float:
        """When a sleep reached at ``now`` ends, or a wait reached then times out (0: never)."""
        if self.until is not None:
            return self.until
        span = self.timeout if self.signal else self.seconds
        return now + span if span else 0.0


@dataclass(frozen=True, slots=True)
class Step:
    """One local transaction: ``participant``'s ``action``, undone by its compensation.

    Time limits (seconds, ``None`` for none), each per attempt, never counting the wait behind
    other messages unless that is what they bound:

    * ``timeout`` bounds the action handler's run, from when the participant starts it to its
      answer (start-to-close). A timed-out attempt is retried under ``retry`` (as a
      ``TimeoutError``: ``retry_on`` decides); when attempts run out the step is in doubt and
      compensated. An ``async`` handler is cancelled at this limit.
    * ``schedule_timeout`` bounds the wait before the participant starts the action: from when
      the command is sent (or re-sent by a recovery) to when its handler begins. An answer from
      the participant's inbox needs no start. Retried like ``timeout``.
    * ``compensation_timeout`` bounds a compensation handler's run (start-to-close); its clock
      starts when the handler starts, so it never runs out behind a slow action. A timed-out
      compensation is retried under ``compensation_retry``, then the saga is stuck.

    ``compensable=False`` marks a step with nothing to undo (a notification); such a step
    should come last, as no later failure can take it back. If the saga is cancelled or fails
    while such a step is in doubt, the step is *fenced* rather than compensated: the saga waits
    until the participant has handled every copy already sent, refuses any later one, and
    records whether the step ran (``StepFenced``).

    Step kinds (Garcia-Molina and Salem; Richardson): ``pivot=True`` marks the point of no
    return. Steps before it are compensable as usual, and a failure of the pivot itself (or
    before it) compensates them. Once the pivot succeeds the saga must complete: every later
    step must be ``retriable=True`` and is retried until it succeeds (any error, ``StepFailed``
    and timeouts included; ``retry`` gives the back-off, capped by its ``max_backoff``, while
    its ``max_attempts`` is ignored), never compensated, so it needs no ``@compensation``.

    ``group`` is set by :class:`Parallel` (the group's number in its saga, from 1); 0 for a
    step of its own. Consecutive steps of one group run at once.
    """

    name: str
    participant: str
    action: str
    compensable: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float | None = None
    compensation_retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(max_attempts=3, backoff=0.01)
    )
    schedule_timeout: float | None = None
    compensation_timeout: float | None = None
    pivot: bool = False
    retriable: bool = False
    group: int = 0
    pause: Pause | None = None  # set by Sleep and WaitFor: the saga waits, no participant runs
    child: Any = None  # set by Child (a children.ChildSpec): the step runs a saga of its own

    def limit(self, kind: str) -> float:
        """The start-to-close limit of an ``"action"`` or ``"compensation"`` attempt (0: none)."""
        return (self.timeout if kind == "action" else self.compensation_timeout) or 0.0


@dataclass(frozen=True, slots=True, init=False)
class Parallel:
    """Steps that run at once, an element of :class:`Saga`'s steps: their commands are sent
    together and the saga goes on when every one of them succeeded (a join). Later steps read
    all their results from ``ctx.results``.

    If one fails (a business failure, its attempts used up, a timeout), no more commands are
    sent: the saga waits for the members still in flight to answer (each bounded by its own
    time limits), then compensates the members that completed or are in doubt (a member that
    was waiting to retry is in doubt), then the earlier steps, in reverse order of completion.
    A cancel or a passed deadline does not wait: every member still running is in doubt.

    Members are plain steps: no group inside a group, no pivot (the point of no return is one
    step). After the pivot a group's members are all retriable. A member that cannot be
    compensated is allowed only in the saga's last group, as no later step can fail.
    """

    steps: tuple[Step, ...]

    def __init__(self, steps: Sequence[Step]) -> None:
        members = tuple(steps)
        if not members:
            raise DefinitionError("Parallel", "a parallel group needs at least one step")
        for position, member in enumerate(members):
            if isinstance(member, Parallel):
                raise DefinitionError(
                    "Parallel",
                    f"steps[{position}] is a group inside a group: list its steps in the outer "
                    "group (they all run at once anyway)",
                )
            if not isinstance(member, Step):
                raise DefinitionError("Parallel", f"steps[{position}] is {member!r}, not a Step")
            if member.pause is not None:
                raise DefinitionError(
                    "Parallel",
                    "a Sleep or WaitFor cannot run in a parallel group: put it before or after",
                    step=member.name,
                )
            if member.pivot:
                raise DefinitionError(
                    "Parallel",
                    "a pivot cannot run in a parallel group: the point of no return is one "
                    "step (put it before or after the group)",
                    step=member.name,
                )
        object.__setattr__(self, "steps", members)


def stages_of(saga: str, elements: Sequence[Step | Parallel]) -> tuple[tuple[Step, ...], ...]:
    """The stages ``elements`` run in, each group's members numbered by the group's place.

    Flat steps already numbered (a ``dataclasses.replace`` of a saga passes them so) form a
    group again when they are consecutive and share a number."""
    if isinstance(elements, str | bytes) or not isinstance(elements, Sequence | tuple | list):
        raise DefinitionError(saga, f"steps must be a list of steps, not {elements!r}")
    runs: list[list[Step]] = []
    grouped: list[bool] = []
    previous: object = None
    for position, element in enumerate(elements):
        if isinstance(element, Parallel):
            runs.append(list(element.steps))
            grouped.append(True)
            previous = element
        elif isinstance(element, Step):
            if element.group and isinstance(previous, Step) and previous.group == element.group:
                runs[-1].append(element)
            else:
                runs.append([element])
                grouped.append(bool(element.group))
            previous = element
        else:
            raise DefinitionError(saga, f"steps[{position}] is {element!r}, not a Step")
    stages = []
    number = 0
    for run, is_group in zip(runs, grouped, strict=True):
        if is_group:
            number += 1
        group = number if is_group else 0
        stages.append(tuple(dataclasses.replace(s, group=group) for s in run))
    return tuple(stages)


def check_groups(saga: str, stages: tuple[tuple[Step, ...], ...]) -> None:
    """A member that cannot be undone runs only in the last stage: a sibling's or a later
    step's failure could not take it back."""
    for stage in stages[:-1]:
        for step in stage:
            if step.group and not step.compensable and not step.retriable:
                raise DefinitionError(
                    saga,
                    "a step that cannot be compensated may run in a parallel group only when "
                    "the group is the saga's last stage (a sibling's failure could not undo it)",
                    step=step.name,
                )


def Sleep(  # noqa: N802 - a step kind, spelled like the other step types
    name: str, seconds: float | None = None, *, until: float | datetime.datetime | None = None
) -> Step:
    """A step that sleeps ``seconds`` from when the saga reaches it, or until the wall-clock
    time ``until`` (a POSIX timestamp or an aware datetime). The due time is journaled when
    the step is reached (``SleepStarted``), so a restart does not restart the clock; a saga
    asleep holds a timer entry, not a thread. Nothing to compensate; its result is None."""
    if isinstance(until, datetime.datetime):
        if until.tzinfo is None:
            raise DefinitionError(name, "Sleep(until=) needs an aware datetime (with tzinfo)")
        until = until.timestamp()
    if (seconds is None) == (until is None):
        raise DefinitionError(str(name), "Sleep needs either seconds= or until=, not both")
    if not _finite(seconds if until is None else until, allow_zero=True):
        raise DefinitionError(str(name), "Sleep's seconds/until must be a finite number >= 0")
    return Step(name, PAUSE_PARTICIPANT, "sleep", compensable=False, pause=Pause(seconds, until))


def WaitFor(  # noqa: N802 - a step kind, spelled like the other step types
    name: str, *, timeout: float | None = None, type: Any = None, signal: str | None = None
) -> Step:
    """A step that waits for the signal ``signal`` (by default its own ``name``), sent with
    ``Runtime.signal``; its payload becomes the step's result (``ctx.results[name]``, decoded
    as ``type`` if given). A signal sent before the saga gets here is kept for it. Past
    ``timeout`` seconds (from when the step is reached; journaled) the step fails and the
    saga compensates; after the pivot it waits again instead (the timeout is reported as a
    retry in the saga's status). Nothing to compensate."""
    if timeout is not None and not _finite(timeout, allow_zero=False):
        raise DefinitionError(str(name), "WaitFor's timeout must be a positive number")
    wanted = signal if signal is not None else name
    if not isinstance(wanted, str) or not wanted.strip():
        raise DefinitionError(str(name), "WaitFor needs a non-empty signal name")
    pause = Pause(signal=wanted, timeout=timeout, type=type)
    return Step(name, PAUSE_PARTICIPANT, "wait", compensable=False, pause=pause)


def _finite(value: object, *, allow_zero: bool) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return False
    return value >= 0 if allow_zero else value > 0
