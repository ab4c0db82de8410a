"""Every message one actor sends another, in one place: in-process only, never journaled.

They may carry live objects (a definition, a callable to reply to, a future to settle, a Python
value), which is why they are apart from :mod:`sagactor.messages`, whose Structs are the
journal's stored format. Grouped by who receives them:

* a participant's host: :class:`Command`, :class:`Deliver`, :class:`SagaEnded`,
  :class:`GetState`, :class:`Later`;
* the coordinator (and the step-list choreography's routing): :class:`Reply`, :class:`Began`,
  :class:`Timeout`, :class:`Wake`, :class:`DeadlinePassed`, :class:`Cancel`, :class:`Resume`,
  :class:`Published`;
* the native dispatcher: :class:`NativePublished`, :class:`CancelNative`, :class:`Resume`;
* both drivers: :class:`StartSaga`, :class:`Recover`, :class:`Rebuild`, :class:`CountSagas`,
  :class:`Directory`.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future
from types import MappingProxyType
from typing import Any

import msgspec

from .messages import Emitted, SagaEvent, StepResolved
from .names import RUN, ReplyOutcome, TimeLimit

__all__ = [
    "Began",
    "Cancel",
    "CancelNative",
    "Command",
    "CountSagas",
    "DeadlinePassed",
    "Deliver",
    "Directory",
    "GetState",
    "Later",
    "NativePublished",
    "Published",
    "Rebuild",
    "Recover",
    "Reply",
    "Resolve",
    "Resume",
    "SagaEnded",
    "Signal",
    "StartSaga",
    "Timeout",
    "Wake",
]


# -- to a participant's host --------------------------------------------------------------------


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """Coordinator to participant: run ``kind`` (action or compensation) ``name`` for a step.

    ``reply_to`` is a live callable and ``input`` a live value.
    """

    saga_id: str
    step: str
    kind: str
    name: str
    attempt: int
    input: Any
    reply_to: Any
    delayed: bool = False
    mode: str = "orchestration"
    policy: Any = None  # the RetryPolicy a choreography participant applies itself
    attempt_base: int = 0  # attempts made before an operator's resume (not counted again)
    timeout: float = 0.0  # start-to-close limit of the handler (async handlers are cancelled)
    report_start: bool = False  # tell ``reply_to`` a ``Began`` when the handler starts
    fence: bool = False  # a non-compensable step in doubt: record, refuse later copies, run nothing
    retriable: bool = False  # past the pivot: every error is retried, StepFailed included
    results: Mapping[str, Any] = {}  # earlier steps' results, typed, from the journal (ctx.results)

    @property
    def key(self) -> str:
        """The inbox key: the same for every attempt, so a repeat is recognised."""
        return f"{self.saga_id}/{self.step}/{self.kind}"

    @property
    def retry_on(self) -> tuple[type[BaseException], ...]:
        """The errors that retry the step: its policy's (a command waiting in a mailbox keeps
        no copy of them)."""
        return self.policy.retry_on if self.policy is not None else (Exception,)


class Deliver(msgspec.Struct, frozen=True):
    """Dispatcher to subscriber: react to ``event`` (id ``event_id``) of saga ``saga_id``."""

    saga_id: str
    event_id: str
    event: Any
    reply_to: Any
    attempt: int = 1
    timeout: float = 0.0  # async handlers: none in native choreography


class SagaEnded(msgspec.Struct, frozen=True):
    """Driver to participant, once the saga's end (completed or compensated) is durable.

    Sent the way the saga's commands were, so every command of the saga is ahead of it in the
    participant's mailbox: the participant may then drop the saga's inbox records, since no
    copy of its messages can still arrive (see ``ParticipantHost``).
    """

    saga_id: str


class GetState(msgspec.Struct, frozen=True):
    """Ask a host for a copy of its participant's state (taken in the actor's own thread)."""


class Later(msgspec.Struct, frozen=True):
    """A message a host scheduled for itself (a delay fault, a retry), now due."""

    saga_id: str
    message: Any


# -- to the coordinator: the inputs of the pure machine ----------------------------------------


class Reply(msgspec.Struct, frozen=True):
    """A participant's answer to a command. ``outcome``: ok, failed (business) or error."""

    saga_id: str
    step: str
    kind: str
    attempt: int
    outcome: ReplyOutcome
    result: Any = None
    raw: msgspec.Raw = msgspec.Raw(b"\xc0")
    reason: str = ""
    retryable: bool = False


class Began(msgspec.Struct, frozen=True):
    """A participant started the handler of a command at ``at`` (wall clock). A command
    answered from the inbox never begins."""

    saga_id: str
    step: str
    kind: str
    attempt: int
    at: float


class Timeout(msgspec.Struct, frozen=True):
    """Attempt ``attempt`` ran out of time: ``limit`` is ``run`` (its handler began at
    ``since`` and has not answered) or ``schedule`` (it has not begun)."""

    saga_id: str
    step: str
    kind: str
    attempt: int
    limit: TimeLimit = RUN
    since: float = 0.0


class Wake(msgspec.Struct, frozen=True):
    """A retry's back-off is over."""

    saga_id: str
    step: str
    kind: str
    attempt: int


class DeadlinePassed(msgspec.Struct, frozen=True):
    """The saga's deadline (``Saga.deadline``) is due."""

    saga_id: str


class Cancel(msgspec.Struct, frozen=True):
    saga_id: str
    reason: str = "cancelled"


class Signal(msgspec.Struct, frozen=True):
    """Deliver signal ``name`` to a saga (see ``Runtime.signal``); ``delivered`` is set to the
    saga's id once it is journaled, to "" for a signal id already journaled (nothing changes)."""

    saga_id: str
    name: str
    signal_id: str
    payload: msgspec.Raw
    delivered: Future[str]


class Resume(msgspec.Struct, frozen=True):
    saga_id: str


class Resolve(msgspec.Struct, frozen=True):
    """An operator settles a stuck saga's failing compensation (see ``StepResolved``)."""

    saga_id: str
    step: str
    how: str
    note: str
    by: str

    def event(self) -> StepResolved:
        return StepResolved(step=self.step, how=self.how, note=self.note, by=self.by)


class Published(msgspec.Struct, frozen=True):
    """Step-list choreography: a participant's outcome event, once its outbox committed."""

    saga_id: str
    event: SagaEvent
    result: Any = None


# -- to the native dispatcher ------------------------------------------------------------------


class NativePublished(msgspec.Struct, frozen=True):
    """A participant's committed outbox, sent to the dispatcher. ``events`` are the live
    objects when known (``None`` after a restart: the dispatcher then decodes ``emitted``)."""

    saga_id: str
    source: str
    emitted: list[Emitted]
    events: list[Any] | None = None
    error: str = ""
    cause: str = ""  # the id of the delivered event this outbox answers


class CancelNative(msgspec.Struct, frozen=True):
    """Cancel a natively choreographed saga; the event types after which it is too late or
    moot come from ``native_cancel.cancel_plan`` (the engine knows the participants)."""

    saga_id: str
    reason: str
    too_late: frozenset[str]
    moot: frozenset[str]


# -- to both drivers (coordinator and dispatcher) ----------------------------------------------


class StartSaga(msgspec.Struct, frozen=True, kw_only=True):
    definition: Any  # a Saga, or a Choreography for the native dispatcher
    saga_id: str
    mode: str
    input: Any
    raw: bytes
    digest: str
    fresh: bool
    accepted: Future[str]
    fork: Any = None  # a sagas.forks.Fork: the saga begins part-way (Runtime.restart)
    priority: int = 0  # its place in its saga's queue, if max_in_flight makes it wait


class Recover(msgspec.Struct, frozen=True):
    states: list[Any]
    done: Future[list[str]]


class Rebuild(msgspec.Struct, frozen=True):
    """A commit of this saga failed: reload it from the journal and resume."""

    saga_id: str


class CountSagas(msgspec.Struct, frozen=True):
    """Ask how many sagas the actor drives now (``Runtime.footprint``)."""


_EMPTY: Mapping[Any, Any] = MappingProxyType({})


class Directory(msgspec.Struct, frozen=True):
    """What the runtime's catalog says now, as an immutable snapshot: sent to the drivers
    after each registration or definition (so no dict is shared between the caller's threads
    and the actors'). The mappings are read-only views of copies, never changed once made."""

    participants: Mapping[str, Any] = _EMPTY  # name -> the host's actor ref
    subscribers: Mapping[str, tuple[str, ...]] = _EMPTY  # event type name -> participants
    event_types: Mapping[str, type[Any]] = _EMPTY  # event type name -> type
    definitions: Mapping[str, Any] = _EMPTY  # saga name -> Saga or Choreography
    result_types: Mapping[tuple[str, str], Any] = _EMPTY  # (participant, action) -> type
