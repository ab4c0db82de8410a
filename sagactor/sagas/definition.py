"""What a user defines: a :class:`Saga` of steps, or a :class:`Choreography` of events.

Both are checked when written (their shape) and when registered (against the participants).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import DefinitionError
from ..messages import SagaStatus

__all__ = ["Choreography", "Parallel", "RetryPolicy", "Saga", "Step"]


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
            if member.pivot:
                raise DefinitionError(
                    "Parallel",
                    "a pivot cannot run in a parallel group: the point of no return is one "
                    "step (put it before or after the group)",
                    step=member.name,
                )
        object.__setattr__(self, "steps", members)


@dataclass(frozen=True, slots=True, init=False)
class Saga:
    """A named, versioned list of steps. Bump ``version`` when a change would alter how an
    in-flight saga resumes (steps added, removed, reordered or renamed).

    ``deadline`` (seconds) bounds the whole saga: it is journaled at the start as a wall-clock
    time, so a restart does not restart the clock. When it passes, a saga before its pivot is
    compensated (the current step in doubt, as for a cancel); a saga past its pivot is
    reported overdue (``SagaOverdue``, and its outcome's reason) and completes.

    An element of ``steps`` may be a :class:`Parallel` group. ``steps`` then reads back flat
    (every step, a group's members marked with its ``group`` number) and ``stages`` gives the
    order they run in: one tuple per lone step or group."""

    name: str
    steps: tuple[Step, ...]
    version: int = 1
    input_type: type[Any] | None = None
    deadline: float | None = None
    stages: tuple[tuple[Step, ...], ...] = field(init=False, repr=False)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)
    _stage: dict[str, int] = field(init=False, repr=False, compare=False)
    _pivot: str = field(init=False, repr=False, compare=False)

    def __init__(
        self,
        name: str,
        steps: Sequence[Step | Parallel],
        version: int = 1,
        input_type: type[Any] | None = None,
        deadline: float | None = None,
    ) -> None:
        for attribute, value in (
            ("name", name),
            ("version", version),
            ("input_type", input_type),
            ("deadline", deadline),
        ):
            object.__setattr__(self, attribute, value)
        if not isinstance(self.name, str) or not self.name.strip():
            raise DefinitionError(str(self.name), "a saga needs a non-empty name")
        stages = _stages(self.name, steps)
        object.__setattr__(self, "stages", stages)
        object.__setattr__(self, "steps", tuple(step for stage in stages for step in stage))
        if not self.steps:
            raise DefinitionError(self.name, "a saga needs at least one step")
        index: dict[str, int] = {}
        for position, step in enumerate(self.steps):
            for attribute in ("name", "participant", "action"):
                value = getattr(step, attribute)
                if not isinstance(value, str) or not value.strip():
                    raise DefinitionError(
                        self.name, f"steps[{position}] needs a non-empty {attribute}"
                    )
            if step.name in index:
                raise DefinitionError(self.name, "duplicate step name", step=step.name)
            for setting in ("timeout", "schedule_timeout", "compensation_timeout"):
                value = getattr(step, setting)
                if value is not None and not _positive(value):
                    raise DefinitionError(
                        self.name, f"{setting} must be a positive number", step=step.name
                    )
            index[step.name] = position
        if self.version < 1:
            raise DefinitionError(self.name, "version must be at least 1")
        if self.deadline is not None and not _positive(self.deadline):
            raise DefinitionError(self.name, "deadline must be a positive number of seconds")
        object.__setattr__(self, "_index", index)
        order = {step.name: number for number, stage in enumerate(stages) for step in stage}
        object.__setattr__(self, "_stage", order)
        object.__setattr__(self, "_pivot", _check_kinds(self.name, tuple(self.steps)))
        _check_groups(self.name, stages)

    def index(self, step: str) -> int:
        return self._index[step]

    def step(self, name: str) -> Step:
        return self.steps[self._index[name]]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def stage(self, step: str) -> int:
        """The position in ``stages`` of the stage that runs ``step``."""
        return self._stage[step]

    def before(self, step: str) -> tuple[str, ...]:
        """The steps that run before ``step`` (whose results it can read): those of the
        earlier stages (never a sibling in its group, which runs at the same time)."""
        stage = self._stage[step]
        return tuple(s.name for s in self.steps if self._stage[s.name] < stage)

    @property
    def pivot(self) -> str:
        """The name of the pivot step ("" when the saga has none)."""
        return self._pivot


def _stages(saga: str, elements: Sequence[Step | Parallel]) -> tuple[tuple[Step, ...], ...]:
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


def _check_groups(saga: str, stages: tuple[tuple[Step, ...], ...]) -> None:
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


def _check_kinds(saga: str, steps: tuple[Step, ...]) -> str:
    """The pivot's name, after checking the kinds' order: compensable steps, at most one
    pivot, then retriable steps only."""
    pivot = ""
    for step in steps:
        if step.pivot and step.retriable:
            raise DefinitionError(saga, "a step cannot be both pivot and retriable", step=step.name)
        if step.pivot and pivot:
            raise DefinitionError(
                saga, f"a saga has at most one pivot, and {pivot!r} is one", step=step.name
            )
        if step.retriable and not pivot and not step.pivot:
            raise DefinitionError(
                saga,
                "a retriable step must come after the pivot (mark the point of no return "
                "Step(..., pivot=True)): before it, a failure compensates",
                step=step.name,
            )
        if pivot and not step.retriable:
            raise DefinitionError(
                saga,
                f"comes after the pivot {pivot!r}, so it could never be compensated: mark it "
                "retriable=True (retried until it succeeds) or move it before the pivot",
                step=step.name,
            )
        if step.pivot:
            pivot = step.name
    return pivot


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    )


@dataclass(frozen=True, slots=True)
class Choreography:
    """A workflow defined by its events: it begins with ``start`` and ends with one of
    ``completed`` (success) or ``failed`` (everything undone).

    ``cancel`` (optional) is the event that ``Runtime.cancel`` publishes into a running
    instance; its subscribers undo their work, and the flow they start ends with a ``failed``
    event. It is built from the start event's fields of the same names, plus ``reason`` (the
    cancel's reason) when it has that field. Without it, ``Runtime.cancel`` is refused.
    """

    name: str
    start: type[Any]
    completed: tuple[type[Any], ...]
    failed: tuple[type[Any], ...] = ()
    version: int = 1
    cancel: type[Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "completed", tuple(self.completed))
        object.__setattr__(self, "failed", tuple(self.failed))
        if not isinstance(self.name, str) or not self.name.strip():
            raise DefinitionError(str(self.name), "a choreography needs a non-empty name")
        if not self.completed:
            raise DefinitionError(self.name, "a choreography needs at least one completed event")
        for kind in (self.start, *self.completed, *self.failed):
            if not (isinstance(kind, type) and issubclass(kind, msgspec.Struct)):
                raise DefinitionError(self.name, f"{kind!r} is not a msgspec Struct event type")
        if self.start in self.completed or self.start in self.failed:
            raise DefinitionError(self.name, "the start event cannot also be a terminal event")
        if self.cancel is not None:
            self._check_cancel(self.cancel)

    def _check_cancel(self, cancel: type[Any]) -> None:
        if not (isinstance(cancel, type) and issubclass(cancel, msgspec.Struct)):
            raise DefinitionError(
                self.name, f"cancel={cancel!r} is not a msgspec Struct event type"
            )
        if cancel is self.start or cancel in self.completed or cancel in self.failed:
            raise DefinitionError(
                self.name,
                f"cancel={cancel.__name__} must be neither the start nor a terminal event: "
                "its subscribers undo their work, and their events end with a failed one",
            )
        known = {*self.start.__struct_fields__, "reason"}
        required = cancel.__struct_fields__[
            : len(cancel.__struct_fields__) - len(cancel.__struct_defaults__)
        ]
        missing = [f for f in required if f not in known]
        if missing:
            raise DefinitionError(
                self.name,
                f"cancel={cancel.__name__} needs {', '.join(missing)}, which the start event "
                f"{self.start.__name__} does not have (its fields and 'reason' are copied)",
            )

    def cancel_event(self, start: Any, reason: str) -> Any:
        """The cancel event of the instance that began with ``start``."""
        assert self.cancel is not None
        fields = self.cancel.__struct_fields__
        values = {f: getattr(start, f) for f in fields if f in self.start.__struct_fields__}
        if "reason" in fields:
            values["reason"] = reason
        return self.cancel(**values)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def terminal(self, type_name: str) -> SagaStatus | None:
        if type_name in {t.__name__ for t in self.completed}:
            return SagaStatus.COMPLETED
        if type_name in {t.__name__ for t in self.failed}:
            return SagaStatus.COMPENSATED
        return None
