"""The exception tree: every error sagactor raises is a :class:`SagactorError`.

Each error names what went wrong (saga, step, participant, file) in its message and keeps the
same facts as attributes, so callers can react without parsing text.
"""

from __future__ import annotations

__all__ = [
    "ChildSagaCycle",
    "DefinitionError",
    "IncompatibleDefinition",
    "InvalidPriority",
    "JournalCorrupt",
    "JournalError",
    "JournalFenced",
    "JournalLocked",
    "JournalWriteError",
    "NotActive",
    "OperationRefused",
    "PayloadError",
    "RecoveryPending",
    "RuntimeClosed",
    "RuntimeCrashed",
    "SagaIdConflict",
    "SagaQuarantined",
    "SagaTimeout",
    "SagactorError",
    "SignalRefused",
    "StartFailed",
    "StepFailed",
    "StreamConflict",
    "UnknownChildSaga",
    "UnknownParticipant",
    "UnknownSaga",
    "UnknownSagaType",
    "UnrecordedChange",
]


class SagactorError(Exception):
    """Root of every error sagactor raises."""


class StepFailed(SagactorError):  # noqa: N818 - raised by users to mean "the step failed"
    """Raised by a handler to signal a business failure: compensate, never retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DefinitionError(SagactorError, ValueError):
    """A saga definition, a participant's handlers or a setting are not usable as written.

    ``kind`` says what ``saga`` names: a saga (the default), a participant, a handler, a
    setting.
    """

    def __init__(
        self, saga: str, problem: str, *, step: str | None = None, kind: str = "saga"
    ) -> None:
        where = f"{kind} {saga!r}" + (f", step {step!r}" if step else "")
        super().__init__(f"{where}: {problem}")
        self.saga = saga
        self.step = step
        self.problem = problem


class UnknownParticipant(DefinitionError):  # noqa: N818
    """A step names a participant that is not registered."""

    def __init__(self, saga: str, step: str, participant: str, known: list[str]) -> None:
        super().__init__(
            saga,
            f"unknown participant {participant!r} "
            f"(registered: {', '.join(sorted(known)) or 'none'})",
            step=step,
        )
        self.participant = participant


class UnknownChildSaga(DefinitionError):  # noqa: N818
    """A ``Child`` step names a saga that is not registered (define it first)."""

    def __init__(self, saga: str, step: str, child: str) -> None:
        super().__init__(saga, f"runs the child saga {child!r}, which is not registered", step=step)
        self.child = child


class ChildSagaCycle(DefinitionError):  # noqa: N818
    """``Child`` steps lead back to a saga on the way: it would start itself without end."""

    def __init__(self, saga: str, step: str, path: list[str]) -> None:
        super().__init__(saga, f"child sagas form a cycle: {' -> '.join(path)}", step=step)
        self.path = path


class PayloadError(SagactorError, TypeError):
    """A saga input or a handler's result cannot be encoded with msgspec, or does not fit its
    declared type (then ``field`` is the path of the offending field, empty for the whole)."""

    def __init__(
        self,
        what: str,
        cause: BaseException,
        *,
        saga: str = "",
        step: str = "",
        saga_id: str = "",
        problem: str = "cannot be encoded",
        detail: str = "",
        field: str = "",
    ) -> None:
        parts = (
            f"saga {saga!r}" if saga else "",
            f"saga id {saga_id!r}" if saga_id else "",
            f"step {step!r}" if step else "",
        )
        where = ", ".join(p for p in parts if p)
        super().__init__(f"{where + ': ' if where else ''}{what} {problem}: {detail or cause}")
        self.saga = saga
        self.saga_id = saga_id
        self.step = step
        self.cause = cause
        self.field = field


class SagaIdConflict(SagactorError):  # noqa: N818
    """A saga id was reused with a different saga or input."""

    def __init__(self, saga_id: str, problem: str) -> None:
        super().__init__(f"saga id {saga_id!r} already used {problem}")
        self.saga_id = saga_id


class StartFailed(SagactorError):  # noqa: N818 - named after what happened to the start
    """The runtime could not carry out a start: its driver raised while handling it (a bug, or
    a journal that raised instead of answering). Nothing of the saga was journaled, so the same
    id may be started again; the other sagas go on. ``cause`` is what was raised."""

    def __init__(self, saga_id: str, saga: str, cause: BaseException, driver: str) -> None:
        super().__init__(
            f"saga {saga!r} (id {saga_id!r}) did not start: the {driver} raised {cause!r}; "
            "nothing of it was journaled"
        )
        self.saga_id = saga_id
        self.saga = saga
        self.cause = cause


class UnknownSaga(SagactorError, KeyError):  # noqa: N818
    """No saga with that id is known to this runtime."""

    def __init__(self, saga_id: str) -> None:
        super().__init__(f"no saga with id {saga_id!r}")
        self.saga_id = saga_id

    def __str__(self) -> str:
        return str(self.args[0])


class SignalRefused(SagactorError):  # noqa: N818
    """``Runtime.signal`` could not deliver: the saga ended (or is compensating, so no step
    will wait any more), it waits for no signal of that name, or the payload does not fit the
    type its ``WaitFor`` declares."""

    def __init__(self, saga_id: str, name: str, why: str) -> None:
        super().__init__(f"signal {name!r} to saga {saga_id!r} refused: {why}")
        self.saga_id, self.name, self.why = saga_id, name, why


class InvalidPriority(SagactorError, TypeError):  # noqa: N818 - named after the condition
    """A start's ``priority`` is not a whole number (``int``, not ``bool``): nothing started."""

    def __init__(self, priority: object) -> None:
        super().__init__(
            f"priority must be an int (higher runs first, default 0), not {priority!r}"
        )
        self.priority = priority


class UnknownSagaType(SagactorError):  # noqa: N818
    """Recovery found in-flight sagas whose definition is not registered."""

    def __init__(self, sagas: dict[str, str]) -> None:
        listing = ", ".join(f"{sid} ({name})" for sid, name in sorted(sagas.items()))
        super().__init__(
            f"{len(sagas)} in-flight saga(s) have no registered definition: {listing}; "
            "pass their definitions to Runtime.open(..., sagas=[...])"
        )
        self.sagas = sagas


class IncompatibleDefinition(SagactorError):  # noqa: N818
    """Recovery found sagas started under another version of their definition."""

    def __init__(self, sagas: dict[str, str]) -> None:
        listing = ", ".join(f"{sid} ({why})" for sid, why in sorted(sagas.items()))
        super().__init__(f"{len(sagas)} in-flight saga(s) cannot resume: {listing}")
        self.sagas = sagas


class SagaQuarantined(SagactorError):  # noqa: N818
    """An in-flight saga cannot be loaded (its definition is unknown or of another version, its
    input or events do not decode): it is set aside, visible, while the others run.

    ``cause`` is the error that keeps it from loading. Fix that (register the definition,
    repair the decoder), then call :meth:`Runtime.retry_quarantined`.
    """

    def __init__(self, saga_id: str, saga: str, cause: SagactorError) -> None:
        kind = f" ({saga})" if saga else ""
        super().__init__(
            f"saga {saga_id!r}{kind} is quarantined: {cause}; fix the cause, then "
            f"retry_quarantined({saga_id!r})"
        )
        self.saga_id = saga_id
        self.saga = saga
        self.cause = cause


class SagaTimeout(SagactorError, TimeoutError):  # noqa: N818
    """Waiting for a saga's outcome took longer than the caller allowed."""

    def __init__(self, saga_id: str, timeout: float | None) -> None:
        super().__init__(f"saga {saga_id!r} did not finish within {timeout}s")
        self.saga_id = saga_id


class RecoveryPending(SagactorError, TimeoutError):  # noqa: N818 - named after the condition
    """A background recovery (``recover="background"``) was not done in the time allowed."""

    def __init__(self, timeout: float | None) -> None:
        super().__init__(f"the background recovery is not done after {timeout} s")


class UnrecordedChange(SagactorError):  # noqa: N818 - names what the handler did
    """A handler changed its participant's state without ``ctx.record`` (found in check mode:
    ``Runtime(check_state=True)`` or ``sagactor.testing.check_state()``)."""

    def __init__(self, participant: str, handler: str, saga_id: str, step: str) -> None:
        super().__init__(
            f"participant {participant!r}: {handler!r} (saga {saga_id!r}, step {step!r}) "
            "changed self.state without ctx.record: the change works now but is lost when the "
            "journal reopens. Record it instead, ctx.record(SomeChange(...)), and apply it in an "
            "@evolve method (if an @evolve method did it, make it depend only on its state and "
            "change)"
        )
        self.participant = participant
        self.handler = handler
        self.saga_id = saga_id
        self.step = step


class RuntimeClosed(SagactorError):  # noqa: N818
    """The runtime was closed; it accepts no more work."""


class RuntimeCrashed(SagactorError):  # noqa: N818
    """The runtime died (a simulated crash or a journal failure); reopen it to recover."""


class JournalError(SagactorError):
    """Base of the journal's errors."""


class JournalLocked(JournalError):  # noqa: N818
    """Another runtime has the journal open for writing."""

    def __init__(self, path: str) -> None:
        super().__init__(f"journal {path!r} is already open by another runtime")
        self.path = path


class JournalCorrupt(JournalError):  # noqa: N818
    """The journal file is foreign, from a newer version, or holds an undecodable record."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"journal {path!r}: {problem}")
        self.path = path
        self.problem = problem


class StreamConflict(JournalError):  # noqa: N818 - named after the condition, like anyio's
    """An append carried a sequence number already taken in its stream."""

    def __init__(self, stream: str, seq: int) -> None:
        super().__init__(f"stream {stream!r} already has a record {seq}")
        self.stream = stream
        self.seq = seq


class JournalWriteError(JournalError):
    """A commit failed (disk full, I/O error, busy); nothing of that batch was recorded."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"journal write failed: {problem}")
        self.problem = problem


class JournalFenced(JournalWriteError):  # noqa: N818 - named after the condition
    """Another runtime took the journal's lease over (a newer fencing token): this runtime's
    writes are refused, and it dies. Its in-flight sagas are the new owner's to finish."""

    def __init__(self, token: int, current: int | None) -> None:
        now = "no lease" if current is None else f"token {current}"
        super().__init__(
            f"fenced: another runtime took the journal over (the lease has {now}, this "
            f"runtime held token {token}); nothing more of this runtime is written"
        )
        self.token = token
        self.current = current


class NotActive(SagactorError):  # noqa: N818 - named after the condition
    """The runtime is a standby: another runtime holds the journal's lease, so this one only
    forwards starts and reads; ``operation`` must run on the active runtime."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"{operation}: this runtime is a standby (another runtime holds the journal's "
            "lease); call it on the active runtime, or wait until this one takes over"
        )
        self.operation = operation


class OperationRefused(SagactorError, ValueError):  # noqa: N818 - named after the condition
    """An operation cannot apply: a wrong argument, or a saga not in the state it needs."""

    def __init__(self, operation: str, problem: str) -> None:
        super().__init__(f"{operation}: {problem}")
        self.operation = operation
        self.problem = problem
