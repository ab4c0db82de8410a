"""The deterministic kind: every actor of a runtime on the caller's thread, in a seeded order.

No thread runs an actor: the caller drives them with :meth:`DeterministicKind.step` or
:meth:`DeterministicKind.run_until_quiet`. Each step picks one actor with mail by a seeded
``random.Random`` and hands it one message. An actor's mail is kept per sender, and the step
takes the head of a randomly chosen sender's lane: messages from different senders may be
reordered, one sender's never are (the guarantee pykka and Akka give). Journal answers
(``on_turn`` callbacks, the urgent lane) still come first, as on the other kinds.

Time is virtual (:class:`~sagactor.clock.VirtualClock`): :class:`VirtualTimers` keeps due
callbacks in a heap and fires the earliest only once no actor has mail, moving the clock to
its due time. Under one seed the whole run is a function of the seed: the same seed twice
gives the same order of every message, so the same journal.

Limits, said plainly: async handlers (which run on an event loop thread) are refused; a
handler that blocks blocks the whole simulation; only one simulation runs at a time (the clock
seam is process-wide).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import random
from collections.abc import Callable
from typing import Any

from pykka._envelope import Envelope

from ..clock import VirtualClock
from .kinds import ActorKind, ActorKinds, KindActor
from .timers import TimerService

__all__ = ["DeterministicKind", "SimulatedKinds", "VirtualTimers"]

_OUTSIDE = -1  # the sender id of a message told from outside any actor (the caller)


class _SimMailbox:
    """An actor's mail by sender (lanes keep each sender's order) plus the urgent lane."""

    __slots__ = ("_kind", "lanes", "started", "urgent")

    def __init__(self, kind: DeterministicKind) -> None:
        self._kind = kind
        self.lanes: dict[int, collections.deque[Envelope[Any]]] = {}
        self.urgent: collections.deque[Envelope[Any]] = collections.deque()
        self.started = False

    def put(self, envelope: Envelope[Any], /) -> None:
        sender = self._kind.current
        self.lanes.setdefault(sender, collections.deque()).append(envelope)

    def put_urgent(self, envelope: Envelope[Any], /) -> None:
        self.urgent.append(envelope)

    def get(self) -> Envelope[Any]:
        if self.urgent:
            return self.urgent.popleft()
        senders = sorted(s for s, lane in self.lanes.items() if lane)
        sender = senders[0] if len(senders) == 1 else self._kind.random.choice(senders)
        return self.lanes[sender].popleft()

    def empty(self) -> bool:
        return not self.urgent and not any(self.lanes.values())

    def drain(self) -> collections.deque[Envelope[Any]]:
        left = collections.deque(self.urgent)
        for sender in sorted(self.lanes):
            left.extend(self.lanes[sender])
        self.urgent.clear()
        self.lanes.clear()
        return left


class VirtualTimers(TimerService):
    """Timers on virtual time: fired by the simulation loop when it is idle, never by a thread."""

    def __init__(self, clock: VirtualClock) -> None:  # no thread: see TimerService
        self.clock = clock
        self._due: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._stopped = False

    def schedule(self, due: float, callback: Callable[[], None]) -> None:
        if not self._stopped:
            heapq.heappush(self._due, (due, next(self._order), callback))

    def stop(self) -> None:
        self._stopped = True
        self._due.clear()

    def __len__(self) -> int:
        return len(self._due)

    def fire_next(self) -> bool:
        """Move the clock to the earliest due time and run that timer; False if none is left."""
        if not self._due:
            return False
        due, _, callback = heapq.heappop(self._due)
        self.clock.advance_to(due)
        callback()
        return True


class DeterministicKind(ActorKind):
    """All actors on the caller's thread, the next one chosen by ``random`` (see the module)."""

    def __init__(self, rng: random.Random) -> None:
        self.random = rng
        self.current = _OUTSIDE  # the actor whose message is being handled (its sender id)
        self._actors: list[KindActor] = []  # in launch order: the choice is over a stable list
        self._ids: dict[int, int] = {}  # id(actor) -> its index in _actors
        self.steps = 0
        self.on_step: Callable[[int], None] | None = None  # the simulation's fault hook

    def mailbox(self, actor: KindActor) -> _SimMailbox:
        return _SimMailbox(self)

    def launch(self, actor: KindActor) -> None:
        self._ids[id(actor)] = len(self._actors)
        self._actors.append(actor)

    def ready(self) -> list[KindActor]:
        ready = []
        for actor in self._actors:
            inbox: _SimMailbox = actor.actor_inbox  # type: ignore[assignment]
            stopped = actor.actor_stopped.is_set()
            if not stopped and (not inbox.started or not inbox.empty()):
                ready.append(actor)
        return ready

    def step(self) -> bool:
        """Run one message of one ready actor (its ``on_start`` first); False if none is ready."""
        ready = self.ready()
        if not ready:
            return False
        actor = ready[0] if len(ready) == 1 else self.random.choice(ready)
        inbox: _SimMailbox = actor.actor_inbox  # type: ignore[assignment]
        self.steps += 1
        previous, self.current = self.current, self._ids[id(actor)]
        try:
            if not inbox.started:
                inbox.started = True
                actor._actor_loop_setup()
            else:
                actor.handle_envelope(inbox.get())
        finally:
            self.current = previous
        if actor.actor_stopped.is_set():
            actor.fail_pending(inbox.drain())
        if self.on_step is not None:
            self.on_step(self.steps)
        return True

    def drive(self, limit: int = 1_000_000) -> int:
        """Run steps until no actor has mail (timers not fired); returns the steps run."""
        ran = 0
        while ran < limit and self.step():
            ran += 1
        return ran

    def close(self) -> None:
        for actor in self._actors:
            inbox: _SimMailbox = actor.actor_inbox  # type: ignore[assignment]
            actor.fail_pending(inbox.drain())


class SimulatedKinds(ActorKinds):
    """:class:`ActorKinds` for a simulation: drivers and hosts on one :class:`DeterministicKind`,
    timers on a :class:`VirtualTimers`: ``Runtime.in_memory(kinds=SimulatedKinds(seed))``."""

    allows_async = False

    def __init__(self, seed: int, clock: VirtualClock | None = None) -> None:  # no threads
        self.seed = seed
        self.clock = clock if clock is not None else VirtualClock()
        self.sim = DeterministicKind(random.Random(seed))
        self.virtual_timers = VirtualTimers(self.clock)

    @property
    def drivers(self) -> ActorKind:
        return self.sim

    def host(self, inline: bool) -> ActorKind:
        return self.sim

    def timers(self) -> TimerService:
        return self.virtual_timers

    @property
    def on_scheduler(self) -> bool:
        return False

    def settle(self, until: Callable[[], bool]) -> None:
        """Drive the actors until ``until()`` holds or nothing is ready (see the engine)."""
        while not until() and self.sim.step():
            pass

    def step(self) -> bool:
        """One message of one actor; else (idle) the earliest timer. False: nothing left."""
        return self.sim.step() or self.virtual_timers.fire_next()

    def run_until_quiet(self, max_steps: int = 200_000) -> int:
        """Run until no actor has mail and no timer is due; returns the steps run."""
        ran = 0
        while ran < max_steps and self.step():
            ran += 1
        return ran

    def close(self) -> None:
        self.virtual_timers.stop()
        self.sim.close()
