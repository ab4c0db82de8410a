"""sagactor: an in-process, actor-model saga runtime with event-sourced SQLite journals."""

import logging

from .actors.faults import Fault
from .actors.participant import (
    Participant,
    StepContext,
    StepResults,
    action,
    compensation,
    evolve,
    on,
)
from .cluster.sharing import Partitioned
from .crashpoints import CrashPoint, SimulatedCrash
from .errors import (
    ChildSagaCycle,
    DefinitionError,
    IncompatibleDefinition,
    InvalidPriority,
    JournalCorrupt,
    JournalError,
    JournalFenced,
    JournalLocked,
    JournalWriteError,
    NotActive,
    OperationRefused,
    PayloadError,
    RecoveryPending,
    RuntimeClosed,
    RuntimeCrashed,
    SagactorError,
    SagaIdConflict,
    SagaQuarantined,
    SagaTimeout,
    SignalRefused,
    StartFailed,
    StepFailed,
    StreamConflict,
    UnknownChildSaga,
    UnknownParticipant,
    UnknownSaga,
    UnknownSagaType,
    UnrecordedChange,
)
from .messages import Outcome, SagaStatus
from .observe import Listener, Metrics, Notice, RecoveryNotice, RecoveryProgress, SagaNotice
from .operations import SagaPage
from .persistence.journal import JournalStats
from .persistence.summaries import SagaRow
from .retention import PruneReport, Retention
from .runtime import Footprint, HistoryEntry, Mode, Runtime, SagaRun
from .sagas.children import Child, ChildInput
from .sagas.definition import Choreography, Parallel, RetryPolicy, Saga, Sleep, Step, WaitFor
from .sagas.versions import Definitions

__all__ = [
    "Child",
    "ChildInput",
    "ChildSagaCycle",
    "Choreography",
    "CrashPoint",
    "DefinitionError",
    "Definitions",
    "Fault",
    "Footprint",
    "HistoryEntry",
    "IncompatibleDefinition",
    "InvalidPriority",
    "JournalCorrupt",
    "JournalError",
    "JournalFenced",
    "JournalLocked",
    "JournalStats",
    "JournalWriteError",
    "Listener",
    "Metrics",
    "Mode",
    "NotActive",
    "Notice",
    "OperationRefused",
    "Outcome",
    "Parallel",
    "Participant",
    "Partitioned",
    "PayloadError",
    "PruneReport",
    "RecoveryNotice",
    "RecoveryPending",
    "RecoveryProgress",
    "Retention",
    "RetryPolicy",
    "Runtime",
    "RuntimeClosed",
    "RuntimeCrashed",
    "Saga",
    "SagaIdConflict",
    "SagaNotice",
    "SagaPage",
    "SagaQuarantined",
    "SagaRow",
    "SagaRun",
    "SagaStatus",
    "SagaTimeout",
    "SagactorError",
    "SignalRefused",
    "SimulatedCrash",
    "Sleep",
    "StartFailed",
    "Step",
    "StepContext",
    "StepFailed",
    "StepResults",
    "StreamConflict",
    "UnknownChildSaga",
    "UnknownParticipant",
    "UnknownSaga",
    "UnknownSagaType",
    "UnrecordedChange",
    "WaitFor",
    "action",
    "compensation",
    "evolve",
    "on",
]
__version__ = "0.1.0"

# A library logs, the application decides where to: no "No handlers" fallback to stderr.
logging.getLogger("sagactor").addHandler(logging.NullHandler())
