"""A runtime's place among those sharing a PostgreSQL journal: standby, then active (see
:mod:`sagactor.cluster`); and the runtime's methods for it (:class:`Clustered`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio.to_thread

from ..engine import Engine
from ..errors import RuntimeClosed, RuntimeCrashed
from ..handles import SagaRun
from ..names import Mode
from ..observe import Listener
from ..persistence.journal import Journal
from ..sagas.definition import Choreography, Saga
from ..sagas.inputs import prepare_starts
from .remote import RemoteRun, RuntimeLike, StartsConsumer
from .view import StandbyView

if TYPE_CHECKING:
    from ..actors.participant import Participant
    from ..persistence.postgres import PostgresJournal
    from ..retention import Retention

__all__ = ["Clustered", "Membership", "membership"]

log = logging.getLogger("sagactor")


class Membership:
    """One runtime's place among those sharing a PostgreSQL journal: standby or active."""

    def __init__(
        self,
        journal: PostgresJournal,
        participants: Sequence[Participant[Any]],
        sagas: Sequence[Saga | Choreography],
        listeners: Sequence[Listener],
    ) -> None:
        from ..persistence.postgres.starts import StartsQueue

        self.journal = journal
        self.queue = StartsQueue(journal)
        self.view = StandbyView(journal) if journal.role == "standby" else None
        self.active = threading.Event()
        if self.view is None:
            self.active.set()
        self._participants = participants
        self._sagas = sagas
        self._options: dict[str, Any] = {}
        self._listeners = listeners
        self._retention: Retention | None = None
        self._lock = threading.Lock()
        self._closing = False
        self._consumer: StartsConsumer | None = None
        self._runtime: RuntimeLike | None = None

    @property
    def standby(self) -> bool:
        return not self.active.is_set()

    @property
    def engine_journal(self) -> Journal:
        """What the runtime's engine is given: the journal, or a standby's view of it."""
        return self.journal if self.view is None else self.view

    def attach(
        self, runtime: RuntimeLike, options: dict[str, Any], retention: Retention | None
    ) -> None:
        """Start being what the journal says: active (consume starts) or standby (wait)."""
        self._runtime, self._options, self._retention = runtime, options, retention
        if self.view is None:
            self._activate(runtime.engine)
        else:
            self.journal.on_promoted = self._promote
            self.journal.wait_for_lease()

    def forward(
        self,
        saga: Saga | Choreography,
        inputs: Sequence[Any],
        saga_ids: Sequence[str] | None,
        mode: Mode,
    ) -> list[tuple[str, int]]:
        """Durably ask the active runtime to start these sagas (see
        :mod:`~sagactor.persistence.postgres.starts`); their ids and request rows."""
        starts = prepare_starts(saga, inputs, saga_ids)
        rows = self.queue.request(
            [(s.saga_id, saga.name, saga.version, mode, s.raw) for s in starts]
        )
        return [(s.saga_id, row) for s, row in zip(starts, rows, strict=True)]

    def _activate(self, engine: Engine) -> None:
        self.journal.on_fenced = engine.die
        self._consumer = StartsConsumer(engine, self.queue)
        self.active.set()

    def _activate_retention(self, runtime: RuntimeLike) -> None:
        if self._retention is not None:
            runtime.keep_pruning(self._retention)

    def _promote(self) -> None:
        """On the journal's standby thread, once it took the lease: become the active one."""
        runtime, view = self._runtime, self.view
        assert runtime is not None
        assert view is not None
        with self._lock:
            if self._closing:
                return
            engine = Engine(self.journal, listeners=self._listeners, **self._options)
            try:
                engine.catalog.register(*self._participants)
                engine.catalog.define(*self._sagas)
            except BaseException:
                engine.shutdown(None)
                raise
            old, runtime._engine = runtime._engine, engine
            view.detached = True  # the journal is the new engine's now
        old.shutdown(None)  # the standby's actors: they never wrote
        try:
            engine.recover()
        except (RuntimeClosed, RuntimeCrashed):
            return  # closed or fenced meanwhile
        self._activate(engine)
        self._activate_retention(runtime)
        log.info("this runtime took the journal over and is now active")

    def close(self, shutdown: Callable[[], None]) -> None:
        """Stop starting forwarded sagas, then ``shutdown`` the engine in use."""
        with self._lock:
            self._closing = True
        if self._consumer is not None:
            self._consumer.stop()
        shutdown()


def membership(
    journal: Journal,
    participants: Sequence[Participant[Any]],
    sagas: Sequence[Saga | Choreography],
    listeners: Sequence[Listener],
) -> Membership | None:
    """The runtime's membership if ``journal`` can be shared (PostgreSQL), else None."""
    role = getattr(journal, "role", None)
    if role is None:
        return None
    return Membership(cast("PostgresJournal", journal), participants, sagas, listeners)


class Clustered:
    """The runtime's methods for a shared journal (a base of :class:`~sagactor.Runtime`)."""

    _engine: Engine
    _member: Membership | None = None

    @property
    def role(self) -> Literal["active", "standby"]:
        """``standby`` while another runtime holds the PostgreSQL journal's lease (see
        :meth:`~sagactor.Runtime.open`): starts go to that one, reads work, writing operations
        raise :class:`NotActive`. ``active`` otherwise (always, on SQLite and in memory)."""
        member = self._member
        return "standby" if member is not None and member.standby else "active"

    def wait_active(self, timeout: float | None = None) -> bool:
        """Block until this runtime is the active one (at once if it is); False on timeout."""
        return self._member is None or self._member.active.wait(timeout)

    def join(
        self: Any,
        member: Membership | None,
        options: dict[str, Any],
        retention: Retention | None,
    ) -> None:
        """Take this runtime's place beside others (for ``Runtime.open``)."""
        self._member = member
        if member is not None:
            member.attach(self, options, retention)
        if retention is not None and self.role == "active":
            self.keep_pruning(retention)

    def leave(self, shutdown: Callable[[], None]) -> None:
        """Close: no promotion from now on; ``shutdown`` stops the engine then in use."""
        if self._member is None:
            shutdown()
        else:
            self._member.close(shutdown)

    def forward(
        self,
        saga: Saga | Choreography | str,
        inputs: Sequence[Any],
        saga_ids: Sequence[str] | None,
        mode: Mode,
    ) -> list[SagaRun]:
        """A standby's starts: durably asked of the active runtime; handles on them."""
        member = self._member
        assert member is not None
        definition = self._engine.catalog.definition(saga)
        asked = member.forward(definition, inputs, saga_ids, mode)
        me = cast("RuntimeLike", self)
        return [RemoteRun(me, saga_id, member.queue, row) for saga_id, row in asked]

    async def aforward(
        self,
        saga: Saga | Choreography | str,
        inputs: Sequence[Any],
        saga_id: str | None,
        mode: Mode,
    ) -> list[SagaRun]:
        ids = None if saga_id is None else [saga_id]
        return await anyio.to_thread.run_sync(lambda: self.forward(saga, inputs, ids, mode))

    async def astart(
        self,
        saga: Saga | Choreography | str,
        input: Any,
        *,
        saga_id: str | None = None,
        mode: Mode = "orchestration",
        priority: int = 0,
    ) -> SagaRun:
        """:meth:`~sagactor.Runtime.start` for async callers: awaits the journaling (on a
        standby: the forwarding, where ``priority`` is the active runtime's default) without
        blocking the loop."""
        if self.role == "standby":
            return (await self.aforward(saga, [input], saga_id, mode))[0]
        face: Any = super()  # the async face, next in the runtime's bases
        started: SagaRun = await face.astart(
            saga, input, saga_id=saga_id, mode=mode, priority=priority
        )
        return started

    def remote_run(self, saga_id: str) -> SagaRun:
        """A handle that reads the saga's outcome from the journal (a standby's)."""
        assert self._member is not None
        return RemoteRun(cast("RuntimeLike", self), saga_id, self._member.queue)
