"""The thread that answers the appenders: the writer hands over each committed group's results
and goes on writing; this thread runs the callbacks, in the order of the appends.

A callback that raises is logged (its owner must not take the others down). One that raises
:class:`~sagactor.crashpoints.SimulatedCrash` kills the journal, as the process would die there.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence

from sagactor.crashpoints import SimulatedCrash
from sagactor.errors import StreamConflict
from sagactor.persistence.journal import DoneCallback, Record, write_error

__all__ = ["Answers", "fails_group", "refusal"]

log = logging.getLogger(__name__)

_WAKE = object()
Group = tuple[Sequence[DoneCallback], Sequence[BaseException | None]]


class Answers:
    """Runs callbacks on a thread of its own until :meth:`end` (or the journal's death).

    ``dead`` says whether the journal was killed (then nobody is answered any more); ``die``
    kills it; ``last`` runs once this thread ends (after the writer's end).
    """

    def __init__(
        self,
        path: str,
        *,
        dead: Callable[[], bool],
        die: Callable[[], None],
        last: Callable[[], None],
    ) -> None:
        self.path = path
        self._dead = dead
        self._die = die
        self._last = last
        # Groups to answer, None at the end, _WAKE to look at ``dead`` again (a C queue: no
        # Condition to notify per group).
        self._groups: queue.SimpleQueue[Group | object] = queue.SimpleQueue()
        self.thread = threading.Thread(
            target=self._run, name=f"sagactor-journal-callbacks:{path}", daemon=True
        )
        self.thread.start()

    def give(
        self, callbacks: Sequence[DoneCallback], results: Sequence[BaseException | None]
    ) -> None:
        self._groups.put((callbacks, results))

    def end(self) -> None:
        """No more groups will come: answer those given, then stop."""
        self._groups.put(None)

    def wake(self) -> None:
        """Look at ``dead`` again (the journal was killed)."""
        self._groups.put(_WAKE)

    def _run(self) -> None:
        try:
            while True:
                group = self._groups.get()
                if self._dead():
                    return  # a dead process answers nobody
                if group is None:
                    return
                if not isinstance(group, tuple):
                    continue  # _WAKE: it was only to look at dead again
                callbacks, results = group
                for on_done, result in zip(callbacks, results, strict=True):
                    if self._dead():
                        return
                    self._answer(on_done, result)
        except SimulatedCrash:
            self._die()  # a crash point fired in a callback: the process is "dead"
        except BaseException:
            log.exception("journal %r: callbacks thread died", self.path)
            self._die()
        finally:
            self._last()

    def _answer(self, on_done: DoneCallback, result: BaseException | None) -> None:
        try:
            on_done(result)
        except SimulatedCrash:
            raise
        except Exception:
            log.exception("journal %r: append callback raised", self.path)


def refusal(records: Sequence[Record], error: Exception) -> BaseException:
    """What a batch refused for its own values is told."""
    if isinstance(error, StreamConflict):
        return error
    cause = error.__cause__ or error
    if getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_UNIQUE:
        return StreamConflict(records[0].stream, records[0].seq)
    return write_error(f"batch refused: {cause!r}", cause)


def fails_group(error: Exception) -> bool:
    """True for errors of the database (I/O, full, busy), not of one batch's values."""
    return isinstance(error, sqlite3.DatabaseError) and not isinstance(
        error, sqlite3.IntegrityError | sqlite3.ProgrammingError | sqlite3.DataError
    )
