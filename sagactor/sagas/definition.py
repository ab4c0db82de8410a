"""What a user defines: a :class:`Saga` of steps, or a :class:`Choreography` of events.

Both are checked when written (their shape) and when registered (against the participants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import DefinitionError
from ..messages import SagaStatus
from .steps import Parallel, RetryPolicy, Sleep, Step, WaitFor, check_groups, stages_of

__all__ = ["Choreography", "Parallel", "RetryPolicy", "Saga", "Sleep", "Step", "WaitFor"]


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
    order they run in: one tuple per lone step or group.

    ``max_in_flight`` bounds how many sagas of this name run at once (every version counts
    toward one shared set of slots; each start is judged by its own version's limit). A start
    past it is still acknowledged, durably, once journaled, and waits ``queued`` for a slot
    (see :mod:`sagactor.actors.admission`): higher ``priority`` first, first come first
    served within one priority."""

    name: str
    steps: tuple[Step, ...] | list[Step]  # a tuple, flat (see stages)
    version: int = 1
    input_type: type[Any] | None = None
    deadline: float | None = None
    max_in_flight: int | None = None
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
        max_in_flight: int | None = None,
    ) -> None:
        for attribute, value in (
            ("name", name),
            ("version", version),
            ("input_type", input_type),
            ("deadline", deadline),
            ("max_in_flight", max_in_flight),
        ):
            object.__setattr__(self, attribute, value)
        if not isinstance(self.name, str) or not self.name.strip():
            raise DefinitionError(str(self.name), "a saga needs a non-empty name")
        stages = stages_of(self.name, steps)
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
        limit = self.max_in_flight
        if limit is not None and (
            not isinstance(limit, int) or isinstance(limit, bool) or limit < 1
        ):
            raise DefinitionError(
                self.name, f"max_in_flight must be a whole number of at least 1, not {limit!r}"
            )
        object.__setattr__(self, "_index", index)
        order = {step.name: number for number, stage in enumerate(stages) for step in stage}
        object.__setattr__(self, "_stage", order)
        object.__setattr__(self, "_pivot", _check_kinds(self.name, tuple(self.steps)))
        check_groups(self.name, stages)

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


def _check_kinds(saga: str, steps: tuple[Step, ...]) -> str:
    """The pivot's name, after checking the kinds' order: compensable steps, at most one
    pivot, then retriable steps only."""
    pivot = ""
    for step in steps:
        if step.pause is not None:
            continue  # a sleep or a wait has nothing to undo: it may come anywhere
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
