"""sagactor: an in-process, actor-model saga runtime with event-sourced SQLite journals."""

from .actors.faults import Fault
from .actors.participant import Participant, StepContext, action, compensation, evolve, on
from .crashpoints import CrashPoint, SimulatedCrash
from .errors import (
    DefinitionError,
    IncompatibleDefinition,
    JournalCorrupt,
    JournalError,
    JournalLocked,
    JournalWriteError,
    PayloadError,
    RuntimeClosed,
    RuntimeCrashed,
    SagactorError,
    SagaIdConflict,
    SagaQuarantined,
    SagaTimeout,
    StepFailed,
    StreamConflict,
    UnknownParticipant,
    UnknownSaga,
    UnknownSagaType,
    UnrecordedChange,
)
from .messages import Outcome, SagaStatus
from .runtime import Footprint, HistoryEntry, Mode, Runtime, SagaRun
from .sagas.definition import Choreography, RetryPolicy, Saga, Step

__all__ = [
    "Choreography",
    "CrashPoint",
    "DefinitionError",
    "Fault",
    "Footprint",
    "HistoryEntry",
    "IncompatibleDefinition",
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalWriteError",
    "Mode",
    "Outcome",
    "Participant",
    "PayloadError",
    "RetryPolicy",
    "Runtime",
    "RuntimeClosed",
    "RuntimeCrashed",
    "Saga",
    "SagaIdConflict",
    "SagaQuarantined",
    "SagaRun",
    "SagaStatus",
    "SagaTimeout",
    "SagactorError",
    "SimulatedCrash",
    "Step",
    "StepContext",
    "StepFailed",
    "StreamConflict",
    "UnknownParticipant",
    "UnknownSaga",
    "UnknownSagaType",
    "UnrecordedChange",
    "action",
    "compensation",
    "evolve",
    "on",
]
__version__ = "0.1.0"
