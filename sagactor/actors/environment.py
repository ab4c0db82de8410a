"""What every actor of one runtime shares: journal, timers, faults, crash plan, liveness."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pykka

from ..crashpoints import CrashPlan
from ..observe import Listeners
from ..persistence.journal import DoneCallback, Journal, Record, Snapshot
from .aborts import die_of
from .admission import Admission
from .faults import FaultPlan
from .portal import CommitSignals, HandlerPortal
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
    portal: HandlerPortal = field(default_factory=HandlerPortal)  # runs async handlers
    commits: CommitSignals = field(default_factory=CommitSignals)  # wakes Runtime.watch
    check_state: bool = False  # compare state changes with ctx.record (see statecheck)
    told: int = 0  # actor messages sent (here and by Engine.tell): the bench's per-saga count
    listeners: Listeners = field(default_factory=Listeners)  # notices of durable saga events
    relaxed: bool = False  # durability="relaxed": only a saga's start and end wait for the disk
    admission: Admission = field(default_factory=Admission)  # max_in_flight's slots and queues
    native: Any = None  # the native dispatcher: a hybrid flow's step starts a choreography there
    coordinator: Any = None  # the coordinator: a reaction runs an orchestrated saga there
    outcomes: Any = None  # the outcome board (actors.outcomes.OutcomeBoard)
    early: int = 0  # appends acted on before their commit (the bench's critical-path count)

    def tell(self, ref: pykka.ActorRef[Any], message: Any) -> None:
        """Send unless the runtime is dead; an actor stopped by close() just misses it."""
        if self.dead.is_set():
            return
        self.told += 1  # no lock: a rare lost count under contention is fine for a bench
        try:  # not contextlib.suppress: an object per message on the hottest path
            ref.tell(message)
        except pykka.ActorDeadError:
            return

    def append(
        self, records: Sequence[Record], on_done: DoneCallback, *, snapshot: Snapshot | None = None
    ) -> None:
        """Append unless the runtime is dead: a killed process writes nothing more."""
        if not self.dead.is_set():
            self.journal.append(records, on_done, snapshot=snapshot)

    def append_unawaited(self, records: Sequence[Record], on_done: DoneCallback) -> None:
        """Append a decision already acted on (see :mod:`.recomputable`): the journal may
        hold it back a moment to share the commit of the append that follows."""
        if not self.dead.is_set():
            self.journal.append_unawaited(records, on_done)

    def append_relaxed(
        self, records: Sequence[Record], *, snapshot: Snapshot | None = None
    ) -> None:
        """Append without waiting (relaxed durability): the caller acts at once. A write that
        fails then ends the runtime, as a crash would: the journal and what the actors did
        part ways, and only a reopening (recovery) brings them together again."""

        def failed(error: BaseException | None) -> None:
            if error is not None:
                die_of(self, f"a journal write failed under relaxed durability ({error})", error)

        self.append(records, failed, snapshot=snapshot)
