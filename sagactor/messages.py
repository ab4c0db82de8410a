"""Messages as msgspec Structs: what actors send each other and what the journal records.

Two families:

* **Journal events** (``tag=True`` Structs, encoded as msgpack into
  :class:`~sagactor.persistence.journal.Record`): a saga's transitions (``SagaStarted`` ...
  ``SagaStuck``) and a participant's inbox records (``Handled``). Renaming a field here changes
  the journal format: bump ``SCHEMA_VERSION`` in the SQLite journal when you do.
* **Stored parts** of a participant's records: its snapshot (``ParticipantSnapshot``) and its
  outbox (``Emitted``).

What actors send each other in-process (``Command``, ``Reply``, timers) is in
:mod:`sagactor.actor_messages`; the closed sets of strings (kinds, modes) and the stream names
are in :mod:`sagactor.names`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, get_args

import msgspec

__all__ = [
    "ENDED_EVENTS",
    "FINAL_EVENTS",
    "SAGA_EVENTS",
    "ChildDone",
    "CompensationFailed",
    "CompensationStarted",
    "Emitted",
    "EventDispatched",
    "Handled",
    "HandledOutcome",
    "Outcome",
    "ParticipantSnapshot",
    "RecoveryAttempted",
    "SagaAdmitted",
    "SagaCancelled",
    "SagaCompensated",
    "SagaCompleted",
    "SagaDead",
    "SagaEvent",
    "SagaOverdue",
    "SagaQueued",
    "SagaResumed",
    "SagaRevived",
    "SagaStarted",
    "SagaStatus",
    "SagaStuck",
    "SignalReceived",
    "SleepStarted",
    "StepAbandoned",
    "StepCompensated",
    "StepFenced",
    "StepResolved",
    "StepRetrying",
    "StepStarted",
    "StepSucceeded",
    "StepTimedOut",
    "WaitStarted",
    "event_name",
]


class SagaStatus(StrEnum):
    """Where a saga stands. Completed, compensated, stuck and dead are terminal (``stuck`` can
    be resumed, ``dead`` retried). ``quarantined``: in flight, but it cannot be loaded (see
    ``SagaQuarantined``); it waits, set aside, for ``Runtime.retry_quarantined``. ``dead``: a
    dead letter, parked after ``max_recovery_attempts`` recoveries that saw it make no
    progress (a poison saga that kills its process); ``Runtime.retry_dead`` brings it back.
    ``queued``: accepted (durable), waiting for a slot under its saga's ``max_in_flight``."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    COMPENSATED = "compensated"
    STUCK = "stuck"
    QUARANTINED = "quarantined"
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL  # asked several times per message: one lookup, not four


_TERMINAL: Final = (SagaStatus.COMPLETED, SagaStatus.COMPENSATED, SagaStatus.STUCK, SagaStatus.DEAD)


class _Event(msgspec.Struct, tag=True, frozen=True, kw_only=True):
    pass


class SagaStarted(_Event, frozen=True, omit_defaults=True):
    """A saga was accepted. ``input`` is the msgpack of the caller's input. ``deadline``
    (wall clock, 0 for none) is when the saga's ``deadline`` passes: journaled once, so a
    restart does not restart the clock. A fork (``Runtime.restart``) names the saga it was
    forked from (``origin``), the step it began at (``from_step``) and the results of the
    steps before it, carried over from the origin (``carried``, never compensated by the
    fork: see :mod:`sagactor.forks`)."""

    saga: str
    version: int
    mode: str
    input: msgspec.Raw
    digest: str
    deadline: float = 0.0
    origin: str = ""
    from_step: str = ""
    carried: dict[str, msgspec.Raw] = {}
    parent: str = ""  # a child saga's parent (its id is "<parent>/<step>"); "" for a top saga


class StepStarted(_Event, frozen=True):
    """A step's action was sent (attempt n). ``deadline`` (wall clock, 0 for none) is when its
    ``schedule_timeout`` runs out if the participant has not started it; shown, not replayed
    (a recovery arms the timers again from its own clock)."""

    step: str
    attempt: int
    deadline: float = 0.0


class StepSucceeded(_Event, frozen=True):
    step: str
    result: msgspec.Raw


class StepAbandoned(_Event, frozen=True, tag="StepFailed"):
    """The step failed for good: ``business`` (its handler raised ``sa.StepFailed``) or out of
    attempts. Stored under its first name, ``StepFailed``, so every journal still reads; in
    code it is named apart from the error users raise."""

    step: str
    attempt: int
    reason: str
    business: bool


class StepRetrying(_Event, frozen=True):
    """A technical error; attempt ``attempt + 1`` is due at ``due`` (wall clock)."""

    step: str
    attempt: int
    error: str
    due: float


class StepTimedOut(_Event, frozen=True):
    """The last attempt ran out of time: the step is in doubt and will be compensated.

    ``limit`` says which: ``run`` (its ``timeout``, from the handler's start) or ``schedule``
    (its ``schedule_timeout``: the participant never started it in time)."""

    step: str
    attempt: int
    limit: str = "run"


class CompensationStarted(_Event, frozen=True):
    step: str
    attempt: int
    deadline: float = 0.0


class CompensationFailed(_Event, frozen=True):
    """A compensation attempt raised; retried at ``due`` unless ``due`` is 0 (gave up)."""

    step: str
    attempt: int
    error: str
    due: float


class StepCompensated(_Event, frozen=True):
    step: str


class StepFenced(_Event, frozen=True):
    """A non-compensable step that was in doubt is fenced: every copy of its command sent
    before was handled, later ones are refused. ``outcome``: ``completed`` (it ran and cannot
    be undone), ``failed`` (it refused) or ``refused`` (it never ran and never will)."""

    step: str
    outcome: str


class SagaCompleted(_Event, frozen=True):
    pass


class SagaCompensated(_Event, frozen=True):
    reason: str


class SagaStuck(_Event, frozen=True):
    reason: str


class SagaCancelled(_Event, frozen=True):
    reason: str


class SagaOverdue(_Event, frozen=True):
    """The saga's deadline (wall clock) passed while it ran. Before its pivot it is
    compensated (its current step in doubt, as for a cancel); ``past_pivot``: it completes,
    reported overdue."""

    deadline: float
    past_pivot: bool = False


class SagaResumed(_Event, frozen=True):
    """An operator resumed a stuck saga: its failed compensation is tried again."""

    by: str = "operator"


class StepResolved(_Event, frozen=True):
    """An operator settled a stuck saga's failing compensation of ``step`` by hand: ``how`` is
    ``"compensated"`` (undone outside sagactor) or ``"skipped"`` (left as it is); ``note``
    says why, ``by`` who. The saga goes on compensating the steps before it."""

    step: str
    how: str
    note: str = ""
    by: str = "operator"


class RecoveryAttempted(_Event, frozen=True):
    """Recovery resumed this saga (the ``attempt``-th time in a row with no other event
    between). Written by recovery only, for the sagas it re-sends work for: the normal path
    pays nothing, and any event the saga journals after it is progress that resets the count.
    """

    attempt: int


class SagaDead(_Event, frozen=True):
    """A dead letter: ``attempts`` recoveries in a row saw the saga make no progress (its
    handling likely kills the process), so it is parked and not resumed automatically.
    ``was``: its status before (``running`` or ``compensating``), which a revival restores."""

    reason: str
    attempts: int
    was: str


class SagaRevived(_Event, frozen=True):
    """An operator brought a dead letter back (``Runtime.retry_dead``): it resumes with the
    ``status`` it had before it was parked (its ``SagaDead``'s ``was``)."""

    status: str
    by: str = "operator"


class EventDispatched(_Event, frozen=True):
    """Native choreography: ``source`` published event ``event_id`` (an ``event_type``), and the
    dispatcher delivered it to the subscribers of that type."""

    event_id: str
    event_type: str
    data: msgspec.Raw
    source: str


class ChildDone(_Event, frozen=True):
    """Every step of a child saga succeeded: its result went to its parent, and it stays open
    until the parent ends (then it completes) or compensates its step (then it is undone)."""


class SleepStarted(_Event, frozen=True):
    """A ``Sleep`` step was reached; it ends at ``due`` (wall clock: a restart re-arms it)."""

    step: str
    attempt: int
    due: float


class WaitStarted(_Event, frozen=True):
    """A ``WaitFor`` waits for ``signal`` (none was kept); it times out at ``due`` (0: never)."""

    step: str
    attempt: int
    signal: str
    due: float = 0.0


class SignalReceived(_Event, frozen=True):
    """``Runtime.signal`` delivered ``name`` (msgpack ``payload``), kept until a wait takes it."""

    name: str
    signal_id: str
    payload: msgspec.Raw


class SagaQueued(_Event, frozen=True):
    """Its saga's ``max_in_flight`` was reached: the saga waits in the queue (higher
    ``priority`` first, then by ``ticket``: the order it was queued in) for a slot."""

    priority: int
    ticket: int


class SagaAdmitted(_Event, frozen=True):
    """A queued saga got its slot: its first steps start now (``waited``: seconds queued)."""

    waited: float = 0.0


SagaEvent = (
    SagaStarted
    | StepStarted
    | StepSucceeded
    | StepAbandoned
    | StepRetrying
    | StepTimedOut
    | CompensationStarted
    | CompensationFailed
    | StepCompensated
    | StepFenced
    | SagaCompleted
    | SagaCompensated
    | SagaStuck
    | SagaCancelled
    | SagaOverdue
    | SagaResumed
    | StepResolved
    | RecoveryAttempted
    | SagaDead
    | SagaRevived
    | EventDispatched
    | SleepStarted
    | WaitStarted
    | SignalReceived
    | SagaQueued
    | SagaAdmitted
    | ChildDone
)
# By stored name (the tag), which is the class name except for StepAbandoned ("StepFailed").
SAGA_EVENTS: dict[str, type[Any]] = {
    str(cls.__struct_config__.tag): cls for cls in get_args(SagaEvent)
}


def event_name(event: SagaEvent) -> str:
    """The name a saga event is stored under (its record's ``type``, its msgpack tag)."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


FINAL_EVENTS = frozenset({"SagaCompleted", "SagaCompensated", "SagaStuck", "SagaDead"})
ENDED_EVENTS = frozenset({"SagaCompleted", "SagaCompensated"})
"""Final for good: nothing of such a saga runs again (a stuck one can be resumed)."""


class HandledOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    TOMBSTONE = "tombstone"


class Handled(_Event, frozen=True):
    """A participant handled message ``key`` (saga/step/kind) with this outcome.

    Written in the same transaction as the state changes the handler made: this is the
    idempotent inbox. A repeated message is answered from here and applies nothing.
    """

    key: str
    saga_id: str
    step: str
    kind: str
    outcome: HandledOutcome
    result: msgspec.Raw = msgspec.Raw(b"\xc0")
    reason: str = ""


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """How a saga ended (or stands, while it runs)."""

    saga_id: str
    saga: str
    status: SagaStatus
    reason: str = ""
    results: dict[str, Any] = {}
    compensated: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is SagaStatus.COMPLETED


class Emitted(msgspec.Struct, frozen=True, array_like=True):
    """One published event, as recorded in the publisher's outbox (its inbox record's result)."""

    event_id: str
    type: str
    data: msgspec.Raw


class ParticipantSnapshot(msgspec.Struct, array_like=True):
    """A participant's state and its live inbox records, as one snapshot stores them."""

    state: msgspec.Raw
    inbox: list[Handled]
