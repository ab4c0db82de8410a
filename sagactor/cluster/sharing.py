"""Several processes sharing the work of one PostgreSQL database: :class:`Partitioned`.

The saga ids are split into N partitions (see
:mod:`sagactor.persistence.postgres.partitions`); each partition is a journal of its own,
with its own lease, participants' streams and ``starts`` table. A process opens a runtime per
partition: the active one for the partitions it holds (at most its fair share), a standby for
the others, which forwards starts to the holder through the database and reads outcomes. A
heartbeat renews this process's membership, gives back the partitions it holds beyond its
share (a clean close: another process takes them at its next look and recovers their
in-flight sagas through the normal path), and replaces a partition's runtime that was fenced
(this process paused past the lease: another one has the partition now).

Participants are partitioned with the sagas: ``participants()`` is called once per partition,
and each partition's participant has its own state (its own stream in that partition's
schema), written only by the process holding the partition. A count that must be global (one
stock of an item) is not one participant here: give each partition its share of it, or route
every saga that touches it to one partition (a saga id whose partition you choose: see
:meth:`Partitioned.id_in`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..errors import (
    JournalWriteError,
    OperationRefused,
    RuntimeClosed,
    RuntimeCrashed,
    SagaTimeout,
    UnknownSaga,
)
from ..handles import SagaRun, StartOne
from ..history import HistoryEntry
from ..messages import Outcome
from ..names import Mode
from ..persistence.opening import discarding
from ..runtime import Runtime
from ..sagas.definition import Choreography, Saga
from .asking import Asker, Asking
from .membership import Membership, membership

if TYPE_CHECKING:
    from ..actors.participant import Participant
    from ..persistence.postgres.partitions import Gate, Members, PartitionJournal

__all__ = ["Partitioned"]

log = logging.getLogger("sagactor")

# A partition's runtime replaced, or dead (fenced: another process took the partition over),
# or its group lost with the connection: after healing the slot, call again. Safe for starts
# too: their ids are idempotency keys (a start that did commit returns the same run).
_GONE = (RuntimeClosed, RuntimeCrashed, JournalWriteError)


class Partitioned(Asking, StartOne):
    """This process's part of a database whose sagas several processes share.

    Open with :meth:`open`; close it (or use it as a context manager) to give its partitions
    back at once (a killed process's go when their sessions end, a paused one's on expiry).
    """

    def __init__(
        self,
        url: str,
        *,
        partitions: int,
        participants: Callable[[], Iterable[Participant[Any]]],
        sagas: Iterable[Saga | Choreography],
        lease: float,
        schema: str,
        options: dict[str, Any],
    ) -> None:
        from ..persistence.postgres import partitions as parts

        self._parts = parts
        self.partitions = partitions
        self._url = url
        self._participants = participants
        self._sagas = list(sagas)
        self._lease = lease
        self._schema = schema
        self._options = options
        self.gate: Gate = parts.Gate(partitions)
        self._lock = threading.Lock()  # guards the slots against a close
        self._replacing = threading.Lock()
        self._stop = threading.Event()
        self._round_robin = itertools.count()
        self._slots: list[Runtime] = []
        self._members: Members = parts.Members(url, schema, partitions)
        try:
            self.gate.live = self._members.beat(lease)
            for partition in range(partitions):
                self._slots.append(self._open(partition))
        except BaseException:
            self.close()
            raise
        from ..persistence.postgres.asks import AsksTable

        self._asker = Asker(
            AsksTable(schema),
            lambda: parts.connect(url),
            lambda partition: self._journal(partition).reader(),
            lambda: self.held,
            self.runtime,
        )
        self._beat = threading.Thread(target=self._beating, name="sagactor-members", daemon=True)
        self._beat.start()

    @classmethod
    def open(
        cls,
        url: str,
        *,
        participants: Callable[[], Iterable[Participant[Any]]],
        sagas: Iterable[Saga | Choreography] = (),
        partitions: int = 8,
        lease: float = 10.0,
        schema: str = "sagactor_shared",
        synchronous: Literal["full", "normal"] = "full",
        pool_size: int = 2,
        **runtime_options: Any,
    ) -> Partitioned:
        """Join the processes sharing the PostgreSQL database at ``url``.

        ``participants`` makes one set of participants per partition (their state is the
        partition's). ``partitions`` is fixed for the database: every process must open it
        with the same number. ``lease``: seconds a partition's lease (and a process's
        membership) lasts unless renewed. ``schema``: the PostgreSQL schema of the members'
        table; partition k is the journal in schema ``<schema>_p<k>``. Other keyword
        arguments go to each partition's :class:`Runtime` (``snapshot_every``,
        ``listeners``, ``durability``...).
        """
        options = {"synchronous": synchronous, "pool_size": pool_size, **runtime_options}
        return cls(
            url,
            partitions=partitions,
            participants=participants,
            sagas=sagas,
            lease=lease,
            schema=schema,
            options=options,
        )

    # -- partitions -----------------------------------------------------------------------------

    def _open(self, partition: int) -> Runtime:
        """Partition ``partition``'s runtime: active if the gate lets it take the lease."""
        options = dict(self._options)
        journal: PartitionJournal = self._parts.PartitionJournal(
            self._url,
            gate=self.gate,
            partition=partition,
            schema=self._parts.partition_schema(self._schema, partition),
            lease=self._lease,
            synchronous=options.pop("synchronous"),
            pool_size=options.pop("pool_size"),
        )
        participants = list(self._participants())
        listeners = list(options.pop("listeners", ()))
        member = membership(journal, participants, self._sagas, listeners)
        assert member is not None
        with discarding(journal):
            runtime = Runtime(
                member.engine_journal,
                participants=participants,
                sagas=self._sagas,
                recover=not member.standby,
                listeners=listeners,
                **options,
            )
        runtime.join(member, options, None)
        return runtime

    def _journal(self, partition: int) -> PartitionJournal:
        return self._member_journal(self._slots[partition])  # type: ignore[no-any-return]

    def _member(self, partition: int) -> Membership:
        member = self.runtime(partition)._member
        assert member is not None  # every partition's runtime is a member
        return member

    @staticmethod
    def _member_journal(runtime: Runtime) -> Any:
        assert runtime._member is not None  # every partition's runtime is a member
        return runtime._member.journal

    def runtime(self, partition: int) -> Runtime:
        """Partition ``partition``'s runtime in this process (active or standby)."""
        with self._lock:
            if self._stop.is_set():
                raise RuntimeClosed("this process's partitions are closed")
            return self._slots[partition]

    @property
    def held(self) -> list[int]:
        """The partitions this process holds now (runs their sagas)."""
        return [p for p in range(self.partitions) if self._journal(p).holding]

    def wait_holding(self, count: int, timeout: float) -> bool:
        """Block until this process holds ``count`` partitions; False on timeout."""
        deadline = time.monotonic() + timeout
        while len(self.held) != count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def partition_of(self, saga_id: str) -> int:
        return self._parts.partition_of(saga_id, self.partitions)

    def id_in(self, partition: int) -> str:
        """A new saga id of partition ``partition`` (to start a saga there)."""
        return self._parts.id_in(partition, self.partitions)

    def _beating(self) -> None:
        while not self._stop.wait(self._lease / 3):
            try:
                self.gate.live = self._members.beat(self._lease)
                self._rebalance()
            except Exception:
                log.exception("sharing partitions: the heartbeat failed; trying again")

    def _rebalance(self) -> None:
        """Give back what is held beyond the fair share; replace fenced or dead runtimes."""
        for partition in range(self.partitions):
            self._heal(partition)
        excess = len(self.held) - self.gate.share
        for partition in reversed(self.held):
            if excess <= 0:
                break
            log.info("giving partition %d back (share %d)", partition, self.gate.share)
            self._replace(partition)
            excess -= 1

    def _heal(self, partition: int) -> None:
        """Replace the partition's runtime if it died (fenced: the partition was taken over)."""
        runtime = self._slots[partition]
        if self._journal(partition).fenced or runtime.engine.crashed:
            log.warning("partition %d was taken over by another process", partition)
            self._replace(partition, runtime)

    def _replace(self, partition: int, only: Runtime | None = None) -> None:
        """Open the partition's runtime again (a standby while the gate says this process
        holds enough), then close the old one (its lease given back). Callers meanwhile use
        the old one, or the new one: never wait for the opening."""
        with self._replacing:  # one replacement at a time: no opening wasted
            old = self._slots[partition]
            if self._stop.is_set() or (only is not None and old is not only):
                return  # closing, or replaced by another thread meanwhile
            fresh = self._open(partition)
            with self._lock:
                swapped = not self._stop.is_set()
                if swapped:
                    self._slots[partition] = fresh
            stale = old if swapped else fresh
            self.gate.holders.discard(self._member_journal(stale))
            stale.close()

    # -- running sagas --------------------------------------------------------------------------

    def _local(self) -> int:
        """A partition to start a saga without an id in: one held here (no forwarding)."""
        held = self.held
        if not held:
            return next(self._round_robin) % self.partitions
        return held[next(self._round_robin) % len(held)]

    def _retrying(self, partition: int, call: Callable[[Runtime], Any]) -> Any:
        """``call`` on the partition's runtime; again (for up to two leases) if that one was
        being replaced or had died."""
        deadline = time.monotonic() + 2 * self._lease
        while True:
            runtime = self.runtime(partition)
            try:
                return call(runtime)
            except _GONE:
                if self._stop.is_set() or time.monotonic() >= deadline:
                    raise
                self._heal(partition)
                time.sleep(0.05)

    def start_many(
        self,
        saga: Saga | Choreography | str,
        inputs: Sequence[Any],
        *,
        saga_ids: Sequence[str] | None = None,
        mode: Mode = "orchestration",
        priority: int = 0,
    ) -> list[SagaRun]:
        """Start many sagas, each in its partition (one batch per partition); returns once
        each start is durable (journaled, or forwarded to the process holding the partition).
        Without ``saga_ids``, a partition this process holds is chosen and the ids made for it.
        (:meth:`start` starts one.)"""
        if saga_ids is None:
            partition = self._local()
            saga_ids = [self.id_in(partition) for _ in inputs]
        groups: dict[int, list[int]] = {}
        for index, saga_id in enumerate(saga_ids):
            groups.setdefault(self.partition_of(saga_id), []).append(index)
        runs: list[SagaRun | None] = [None] * len(inputs)
        for partition, indexes in groups.items():
            started = self._retrying(
                partition,
                lambda rt, ix=indexes: rt.start_many(  # type: ignore[misc]
                    saga,
                    [inputs[i] for i in ix],
                    saga_ids=[saga_ids[i] for i in ix],
                    mode=mode,
                    priority=priority,
                ),
            )
            for index, run in zip(indexes, started, strict=True):
                runs[index] = run
        return [run for run in runs if run is not None]

    def result(self, saga_id: str, timeout: float | None = None) -> Outcome:
        """Block until the saga ends, wherever it runs (its partition may change hands; a
        forwarded start not journaled yet is waited for). Raises :class:`SagaTimeout`, or
        :class:`UnknownSaga` for an id neither journaled nor asked for."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.002
        while True:
            outcome = self._look(saga_id)
            if outcome is not None and outcome.status.terminal:
                return outcome
            if deadline is not None and time.monotonic() >= deadline:
                raise SagaTimeout(saga_id, timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    def _look(self, saga_id: str) -> Outcome | None:
        partition = self.partition_of(saga_id)
        try:
            return self.status(saga_id)
        except UnknownSaga:
            queue = self._member(partition).queue
            if queue.requested(saga_id):
                return None
            refusal = queue.refusal(saga_id)
            if refusal is not None:
                raise OperationRefused("start", f"saga {saga_id!r}: {refusal}") from None
            raise

    def run(self, saga_id: str) -> SagaRun:
        return self._retrying(self.partition_of(saga_id), lambda rt: rt.run(saga_id))  # type: ignore[no-any-return]

    def status(self, saga_id: str) -> Outcome:
        return self._retrying(self.partition_of(saga_id), lambda rt: rt.status(saga_id))  # type: ignore[no-any-return]

    def history(self, saga_id: str) -> list[HistoryEntry]:
        return self._retrying(self.partition_of(saga_id), lambda rt: rt.history(saga_id))  # type: ignore[no-any-return]

    # -- what runs only where the partition is held --------------------------------------------

    def state(self, participant: str, partition: int) -> Any:
        """A participant's state in one partition (held by this process)."""
        return self.runtime(partition).state(participant)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Give every partition back and leave."""
        self.gate.closing = True
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
        beat = getattr(self, "_beat", None)
        if beat is not None and beat is not threading.current_thread():
            beat.join()
        asker = getattr(self, "_asker", None)
        if asker is not None:
            asker.stop()
        with self._replacing:  # a replacement in progress finishes (and closes its opening)
            pass
        for runtime in self._slots:
            runtime.close()
        self._members.leave()

    def __enter__(self) -> Partitioned:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
