"""A start its driver could not carry out fails at once, and only that start.

The caller of ``Runtime.start`` (``start_many``, ``astart``, a reaction's ``ctx.run_saga``, a
hybrid flow's step) waits on the start's ``accepted`` future, which the commit's answer
settles. If the driver raised while handling the start (a bug, a definition that breaks the
machine, a journal that raises instead of answering), no append was made and no answer would
ever come: the caller would wait for ever. So the driver's failure becomes the start's: its
future gets the error, the half-made saga leaves the driver's memory (the append is the last
thing a start does, so nothing of it was journaled), and the other sagas go on. A slot taken
under ``max_in_flight`` is given back by the future's own callback (see the coordinator).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import InvalidStateError
from typing import Any

from ..actor_messages import StartSaga
from ..errors import SagactorError, StartFailed
from .nested import StartNested

__all__ = ["fail_start"]


def fail_start(sagas: dict[str, Any], message: Any, driver: str, error: Exception) -> None:
    """``message`` raised ``error`` in ``driver``: if it is a start nobody answered yet,
    forget its saga and fail its caller's future."""
    start = message.start if isinstance(message, StartNested) else message
    if not isinstance(start, StartSaga) or start.accepted.done():
        return  # not a start, or answered already (a conflict, a refusal)
    sagas.pop(start.saga_id, None)  # in memory only if this start put it there: not answered
    failure = error
    if not isinstance(error, SagactorError):  # one that names its problem is passed on as is
        failure = StartFailed(start.saga_id, start.definition.name, error, driver)
        failure.__cause__ = error
    with contextlib.suppress(InvalidStateError):  # failed meanwhile by a crash: that says it
        start.accepted.set_exception(failure)
