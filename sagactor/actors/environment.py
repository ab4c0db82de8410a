"""What every actor of one runtime shares: journal, timers, faults, crash plan, liveness."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..crashpoints import CrashPlan
from ..persistence.journal import DoneCallback, Journal, Record, Snapshot
from .faults import FaultPlan
from .timers import TimerService

__all__ = ["Environment"]


@dataclass(slots=True)
class Environment:
    journal: Journal
    timers: TimerService
    faults: FaultPlan = field(default_factory=FaultPlan)
    crash: CrashPlan = field(default_factory=CrashPlan)
    dead: threading.Event = field(default_factory=threading.Event)
    snapshot_every: int = 1000
    portal: Any = None

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        """Append unless the runtime is dead: a killed process writes nothing more."""
        if not self.dead.is_set():
            self.journal.append(records, on_done, snapshot=snapshot)
