"""What a user defines: a :class:`Saga` of steps, or a :class:`Choreography` of events.

Both are checked when written (their shape) and when registered (against the participants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import DefinitionError
from ..messages import SagaStatus

__all__ = ["Choreography", "RetryPolicy", "Saga", "Step"]


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

    def limit(self, kind: str) -> float:
        """The start-to-close limit of an ``"action"`` or ``"compensation"`` attempt (0: none)."""
        return (self.timeout if kind == "action" else self.compensation_timeout) or 0.0


@dataclass(frozen=True, slots=True)
class Saga:
    """A named, versioned list of steps. Bump ``version`` when a change would alter how an
    in-flight saga resumes (steps added, removed, reordered or renamed)."""

    name: str
    steps: tuple[Step, ...] | list[Step]
    version: int = 1
    input_type: type[Any] | None = None
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.steps))
        if not isinstance(self.name, str) or not self.name.strip():
            raise DefinitionError(str(self.name), "a saga needs a non-empty name")
        if not self.steps:
            raise DefinitionError(self.name, "a saga needs at least one step")
        index: dict[str, int] = {}
        for position, step in enumerate(self.steps):
            if not isinstance(step, Step):
                raise DefinitionError(self.name, f"steps[{position}] is {step!r}, not a Step")
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
        object.__setattr__(self, "_index", index)

    def index(self, step: str) -> int:
        return self._index[step]

    def step(self, name: str) -> Step:
        return self.steps[self._index[name]]

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"


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
