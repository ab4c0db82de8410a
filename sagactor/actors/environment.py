"""What every actor of one runtime shares: journal, timers, faults, crash plan, liveness."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from ..crashpoints import CrashPlan
from ..persistence.journal import Journal
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
