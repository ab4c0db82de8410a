"""What users' own tests need: crash points, crash helpers, state checks, a counting ledger,
the deterministic simulation (:func:`simulate`) and the journal contract suite.

``JournalContract`` needs pytest: import it from ``sagactor.testing.journal_contract``.
"""

from ..actors.deterministic import SimulatedKinds
from ..clock import VirtualClock, use_clock, use_ids
from ..crashpoints import CrashPlan, CrashPoint, SimulatedCrash
from ..persistence.memory import MemoryJournal
from .agreement import simulate_both_modes
from .crashes import CrashCase, crash_and_recover, crash_cases
from .ledger import CountingLedger, LedgerState
from .simdisk import SimJournal
from .simulation import Faults, SimulationError, SimulationReport, simulate
from .statecheck import check_state
from .upgrade import UpgradeReport, check_upgrade

__all__ = [
    "CountingLedger",
    "CrashCase",
    "CrashPlan",
    "CrashPoint",
    "Faults",
    "LedgerState",
    "MemoryJournal",
    "SimJournal",
    "SimulatedCrash",
    "SimulatedKinds",
    "SimulationError",
    "SimulationReport",
    "UpgradeReport",
    "VirtualClock",
    "check_state",
    "check_upgrade",
    "crash_and_recover",
    "crash_cases",
    "simulate",
    "simulate_both_modes",
    "use_clock",
    "use_ids",
]
