"""What users' own tests need: crash points, crash helpers, state checks, a counting ledger,
and the journal contract suite.

``JournalContract`` needs pytest: import it from ``sagactor.testing.journal_contract``.
"""

from ..crashpoints import CrashPlan, CrashPoint, SimulatedCrash
from ..persistence.memory import MemoryJournal
from .crashes import CrashCase, crash_and_recover, crash_cases
from .ledger import CountingLedger, LedgerState
from .statecheck import check_state
from .upgrade import UpgradeReport, check_upgrade

__all__ = [
    "CountingLedger",
    "CrashCase",
    "CrashPlan",
    "CrashPoint",
    "LedgerState",
    "MemoryJournal",
    "SimulatedCrash",
    "UpgradeReport",
    "check_state",
    "check_upgrade",
    "crash_and_recover",
    "crash_cases",
]
