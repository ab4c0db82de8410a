"""Signals and operator actions for a saga whose partition another process holds: asked
through the database (see :mod:`sagactor.persistence.postgres.asks`), run by the holder on
its runtime, answered back; the asker's call returns or raises as if it ran here."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import NotActive, OperationRefused, SignalRefused, UnknownSaga

if TYPE_CHECKING:
    from ..persistence.postgres.asks import Answer, AsksTable
    from ..persistence.postgres.schema import Connection
    from ..runtime import Runtime

__all__ = ["Asker", "Asking", "run_ask"]

log = logging.getLogger("sagactor")

OPS = ("signal", "cancel", "resume")


class Asker:
    """Both sides for one process: :meth:`ask` (any thread) and the thread that answers the
    asks of the partitions this process holds."""

    def __init__(
        self,
        table: AsksTable,
        connect: Callable[[], Connection],
        reader: Callable[[int], contextlib.AbstractContextManager[Connection]],
        held: Callable[[], list[int]],
        runtime: Callable[[int], Runtime],
        poll: float = 0.2,
    ) -> None:
        self._table = table
        self._connect = connect
        self._reader = reader
        self._held = held
        self._runtime = runtime
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sagactor-asks", daemon=True)
        self._thread.start()

    def ask(self, partition: int, saga_id: str, op: str, args: Any, timeout: float) -> Any:
        """Run ``op`` where ``partition`` is held; its result, or its error raised here.

        Raises:
            NotActive: No process took the ask within ``timeout`` seconds (it was withdrawn:
                nothing was done).
        """
        payload = msgspec.msgpack.encode(args)
        with self._reader(partition) as conn:
            row = self._table.ask(conn, partition, saga_id, op, payload)
            deadline = time.monotonic() + timeout
            pause = 0.002
            while True:
                answer = self._table.answer_of(conn, row)
                if answer is not None:
                    return _unpack(answer, op, saga_id, args)
                if time.monotonic() >= deadline and self._table.withdraw(conn, row):
                    raise NotActive(
                        f"{op} of saga {saga_id!r}: no process holding its partition "
                        f"{partition} answered within {timeout:g} s (nothing was done; "
                        "try again once the partition is held)"
                    )
                time.sleep(pause)
                pause = min(pause * 2, 0.05)

    def _serve(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed or conn.broken:
                    conn = self._connect()
                    conn.execute(f"LISTEN {self._table.channel}")
                held = self._held()
                for ask in self._table.claim(conn, held) if held else []:
                    runtime = self._runtime(ask.partition)
                    if runtime.role != "active":
                        continue  # given back meanwhile: its next holder runs it
                    answer = run_ask(runtime, ask)
                    if answer is not None:
                        self._table.answer(conn, ask.row, answer)
                for _ in conn.notifies(timeout=self._poll, stop_after=1):
                    pass
            except Exception:
                log.exception("answering asks of other processes failed; trying again")
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(self._poll)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()


def run_ask(runtime: Runtime, ask: Any) -> Answer | None:
    """Run one ask on the holder's runtime; its answer (a refusal is an answer too), or
    None for a saga whose start waits in the ``starts`` table (asked before it: run later)."""
    from ..persistence.postgres.asks import Answer

    args = msgspec.msgpack.decode(ask.args)
    try:
        if ask.op == "signal":
            name, payload, signal_id = args
            result: Any = runtime.signal(ask.saga_id, name, payload, signal_id=signal_id)
        elif ask.op == "cancel":
            runtime.cancel(ask.saga_id, args)
            result = None
        elif ask.op == "resume":
            runtime.resume(ask.saga_id)
            result = None
        else:
            raise OperationRefused(ask.op, "unknown operation")
    except UnknownSaga as error:
        member = runtime._member
        if member is not None and member.queue.requested(ask.saga_id):
            return None
        return Answer(None, type(error).__name__, str(error))
    except (SignalRefused, OperationRefused, NotActive) as error:
        why = getattr(error, "problem", None) or getattr(error, "why", None) or str(error)
        return Answer(None, type(error).__name__, str(why))
    except Exception as error:  # noqa: BLE001 - reported to the asker, who raises it
        return Answer(None, type(error).__name__, str(error))
    return Answer(msgspec.msgpack.encode(result), None, None)


def _unpack(answer: Answer, op: str, saga_id: str, args: Any) -> Any:
    if answer.error_type is None:
        return None if answer.result is None else msgspec.msgpack.decode(answer.result)
    problem = answer.error or ""
    if answer.error_type == "UnknownSaga":
        raise UnknownSaga(saga_id)
    if answer.error_type == "SignalRefused":
        raise SignalRefused(saga_id, args[0], problem)
    raise OperationRefused(op, f"{answer.error_type} on the process holding it: {problem}")


class Asking:
    """Signals and operator actions of :class:`~sagactor.Partitioned`, wherever the saga runs."""

    ask_timeout = 10.0
    """Seconds a signal or operator action for a saga held elsewhere waits to be taken."""

    _asker: Asker

    def partition_of(self, saga_id: str) -> int:
        raise NotImplementedError

    def runtime(self, partition: int) -> Runtime:
        raise NotImplementedError

    def _on_holder(self, saga_id: str, op: str, args: Any, local: Callable[[Runtime], Any]) -> Any:
        """``local`` on the saga's partition if held here; else asked of the holder."""
        partition = self.partition_of(saga_id)
        runtime = self.runtime(partition)
        if runtime.role == "active":
            try:
                return local(runtime)
            except NotActive:
                pass  # given back meanwhile: ask the new holder
        return self._asker.ask(partition, saga_id, op, args, self.ask_timeout)

    def signal(
        self, saga_id: str, name: str, payload: Any = None, *, signal_id: str | None = None
    ) -> bool:
        """:meth:`Runtime.signal`, wherever the saga runs (asked through the database if
        another process holds its partition). Raises :class:`NotActive` if no process holding
        it answered within ``ask_timeout`` seconds (then nothing was done)."""
        signal_id = signal_id or _new_signal_id()
        return bool(
            self._on_holder(
                saga_id,
                "signal",
                (name, payload, signal_id),
                lambda rt: rt.signal(saga_id, name, payload, signal_id=signal_id),
            )
        )

    def cancel(self, saga_id: str, reason: str = "cancelled") -> None:
        """:meth:`Runtime.cancel`, wherever the saga runs (see :meth:`signal`)."""
        self._on_holder(saga_id, "cancel", reason, lambda rt: rt.cancel(saga_id, reason))

    def resume(self, saga_id: str) -> None:
        """:meth:`Runtime.resume`, wherever the saga runs (see :meth:`signal`)."""
        self._on_holder(saga_id, "resume", None, lambda rt: rt.resume(saga_id))


def _new_signal_id() -> str:
    """A forwarded signal always has an id: a second run after a takeover delivers nothing."""
    return uuid.uuid4().hex
