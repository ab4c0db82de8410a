"""Saga and step definitions, checked when written (shape) and when registered (participants)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import DefinitionError

__all__ = ["RetryPolicy", "Saga", "Step"]


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

    ``timeout`` (seconds) makes a step without a reply in doubt, and an in-doubt step is
    compensated. ``compensable=False`` marks a step with nothing to undo (a notification); such
    a step should come last, as no later failure can take it back.
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
            if step.timeout is not None and not (step.timeout > 0 and math.isfinite(step.timeout)):
                raise DefinitionError(
                    self.name, "timeout must be a positive number", step=step.name
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
