"""What users' own tests need: crash points, crash helpers, and the journal contract suite.

``JournalContract`` needs pytest: import it from ``sagactor.testing.journal_contract``.
"""

from ..crashpoints import CrashPlan, CrashPoint, SimulatedCrash
from ..persistence.memory import MemoryJournal
from .crashes import CrashCase, crash_and_recover, crash_cases

__all__ = [
    "CrashCase",
    "CrashPlan",
    "CrashPoint",
    "MemoryJournal",
    "SimulatedCrash",
    "crash_and_recover",
    "crash_cases",
]
