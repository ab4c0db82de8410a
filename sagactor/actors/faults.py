"""Injected faults: make a participant's handler fail, error or be delayed, on purpose.

Used by tests, the playground and the example shop. A fault acts before the handler runs, as
a failure in the service or the network would: nothing of the handler's effect is applied.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Literal

from ..errors import DefinitionError

__all__ = ["Fault", "FaultPlan"]

FaultKind = Literal["fail", "error", "delay"]


@dataclass(slots=True)
class Fault:
    """``fail``: a business failure (StepFailed); ``error``: a technical error (retried);
    ``delay``: the message reaches the handler ``seconds`` late (the participant keeps working).

    ``times`` limits how often it fires (``None``: always); ``probability`` with ``seed`` makes
    it fire at random, reproducibly.
    """

    kind: FaultKind
    times: int | None = None
    probability: float = 1.0
    seed: int | None = None
    seconds: float = 0.0
    fired: int = 0
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("fail", "error", "delay"):
            raise DefinitionError(
                "Fault", f"unknown kind {self.kind!r}: use fail, error or delay", kind="setting"
            )
        if not 0.0 <= self.probability <= 1.0:
            raise DefinitionError(
                "Fault",
                f"probability must be within [0, 1], not {self.probability}",
                kind="setting",
            )
        if self.times is not None and self.times < 0:
            raise DefinitionError("Fault", "times must be >= 0", kind="setting")
        self._random = random.Random(self.seed)

    def fires(self) -> bool:
        if self.times is not None and self.fired >= self.times:
            return False
        if self.probability < 1.0 and self._random.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def describe(self) -> str:
        how = "always" if self.times is None else f"{self.times - self.fired} more time(s)"
        chance = f", p={self.probability} seed={self.seed}" if self.probability < 1.0 else ""
        extra = f" by {self.seconds}s" if self.kind == "delay" else ""
        return f"{self.kind}{extra} ({how}{chance})"


class FaultPlan:
    """Faults by (participant, handler kind, action). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: dict[tuple[str, str, str], Fault] = {}

    def inject(self, participant: str, action: str, fault: Fault, *, kind: str = "action") -> None:
        with self._lock:
            self._faults[(participant, kind, action)] = fault

    def clear(self, participant: str | None = None) -> None:
        with self._lock:
            if participant is None:
                self._faults.clear()
            else:
                for key in [k for k in self._faults if k[0] == participant]:
                    del self._faults[key]

    def check(self, participant: str, kind: str, action: str) -> Fault | None:
        """The fault that fires for this message, if any."""
        if not self._faults:
            return None
        with self._lock:
            fault = self._faults.get((participant, kind, action))
            return fault if fault is not None and fault.fires() else None

    def items(self) -> list[tuple[tuple[str, str, str], Fault]]:
        with self._lock:
            return sorted(self._faults.items())
