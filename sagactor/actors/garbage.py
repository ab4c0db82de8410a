"""Less work for Python's cyclic garbage collector in a process that runs sagas.

Reference counting frees almost everything a saga allocates (messages, records, events); the
cyclic collector still runs a young-generation pass every 700 allocations and, every so often,
a full pass over every long-lived object (modules, definitions, the runtime's actors, the
participants' state). :func:`tune` runs once a runtime has started (``Runtime.__init__``):

* the young-generation threshold goes from Python's default 700 to :data:`GEN0_THRESHOLD`
  (passes are rarer and each is still small); only if it is still the default, so a program
  that set its own keeps it;
* ``gc.freeze()`` moves everything alive after start-up to the permanent generation, which
  later passes skip (cyclic garbage made before start-up is then never collected: start-up
  makes little).

It is process-wide. To keep Python's settings, set ``SAGACTOR_TUNE_GC=0`` in the environment
before the first runtime opens.
"""

from __future__ import annotations

import gc
import os

__all__ = ["GEN0_THRESHOLD", "tune"]

GEN0_THRESHOLD = 50_000
_PYTHON_DEFAULT = 700


def tune() -> bool:
    """Tune the collector (see the module docstring); False if switched off."""
    if os.environ.get("SAGACTOR_TUNE_GC", "1").strip() in {"0", "false", "no", "off"}:
        return False
    first, *older = gc.get_threshold()
    if first == _PYTHON_DEFAULT:
        gc.set_threshold(GEN0_THRESHOLD, *older)
    gc.freeze()
    return True
