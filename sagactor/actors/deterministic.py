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

Two hooks let a simulation add faults without touching the runtime: ``devices`` (a simulated
disk: work that competes with the actors for the next step, such as committing a journal
group) and ``copier`` (a message told from one actor to another may be delivered again: at
once, a duplicate, or ``n`` steps later, after later messages of the same sender, a late copy).

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
from typing import Any, Protocol

from pykka._envelope import Envelope

from ..clock import VirtualClock
from .kinds import ActorKind, ActorKinds, KindActor
from .timers import TimerService

__all__ = ["DeterministicKind", "Device", "SimulatedKinds", "VirtualTimers"]

_OUTSIDE = -1  # the sender id of a message told from outside any actor (the caller)


class Device(Protocol):
    """Something besides the actors that the seed schedules (a simulated disk)."""

    def busy(self) -> bool:
        """True while it has work to do (the simulation is not quiet)."""
        ...

    def work(self) -> None:
        """Do one piece of that work (one scheduler step)."""
        ...


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
        barrier = self._kind.barrier
        if barrier is not None and barrier(envelope.message):
            self._kind.release_to(self, sender)  # no copy overtakes it
        self.lanes.setdefault(sender, collections.deque()).append(envelope)
        copier = self._kind.copier
        if copier is not None and envelope.reply_to is None and sender != _OUTSIDE:
            after = copier(envelope.message)
            if after is not None:  # the network delivers it again, now or later
                self._kind.hold(self, sender, Envelope(envelope.message), after)

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

    replies_off_turn = False  # see ActorKind

    def __init__(self, rng: random.Random) -> None:
        self.random = rng
        self.current = _OUTSIDE  # the actor whose message is being handled (its sender id)
        self._actors: list[KindActor] = []  # in launch order: the choice is over a stable list
        self._ids: dict[int, int] = {}  # id(actor) -> its index in _actors
        self.steps = 0
        self.on_step: Callable[[int], None] | None = None  # the simulation's fault hook
        self.devices: list[Device] = []  # a simulated disk: scheduled like an actor
        # Copies of messages: None, or in how many steps a copy arrives (0: right behind).
        self.copier: Callable[[Any], int | None] | None = None
        self._held: list[tuple[int, int, _SimMailbox, int, Envelope[Any]]] = []
        self._order = itertools.count()
        self.copies = 0  # copies delivered (duplicates and late ones)
        # A message no held copy from the same sender may overtake (the model's limit).
        self.barrier: Callable[[Any], bool] | None = None

    def hold(self, inbox: _SimMailbox, sender: int, envelope: Envelope[Any], after: int) -> None:
        """Deliver ``envelope`` into ``inbox`` from ``sender`` ``after`` steps from now."""
        if after <= 0:
            self.copies += 1
            inbox.lanes[sender].append(envelope)
            return
        heapq.heappush(self._held, (self.steps + after, next(self._order), inbox, sender, envelope))

    def release_to(self, inbox: _SimMailbox, sender: int) -> None:
        """Deliver now, in order, the held copies from ``sender`` to ``inbox``."""
        mine = sorted(h for h in self._held if h[2] is inbox and h[3] == sender)
        if not mine:
            return
        self._held = [h for h in self._held if not (h[2] is inbox and h[3] == sender)]
        heapq.heapify(self._held)
        for _, _, _, _, envelope in mine:
            self.copies += 1
            inbox.lanes.setdefault(sender, collections.deque()).append(envelope)

    def _release(self, everything_due: bool) -> None:
        """Put held copies that are due (or, when nothing else is ready, the next) in place."""
        while self._held and (everything_due or self._held[0][0] <= self.steps):
            _, _, inbox, sender, envelope = heapq.heappop(self._held)
            self.copies += 1
            inbox.lanes.setdefault(sender, collections.deque()).append(envelope)
            everything_due = False

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
        """Run one message of one ready actor (its ``on_start`` first) or one piece of a
        device's work; False if nothing is ready (held copies count as ready)."""
        self._release(False)
        ready = self.ready()
        busy = [device for device in self.devices if device.busy()]
        if not ready and not busy:
            if not self._held:
                return False
            self._release(True)
            return self.step()
        chosen = 0 if len(ready) + len(busy) == 1 else self.random.randrange(len(ready) + len(busy))
        if chosen >= len(ready):
            self.steps += 1
            busy[chosen - len(ready)].work()
            if self.on_step is not None:
                self.on_step(self.steps)
            return True
        actor = ready[chosen]
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
        self._held.clear()  # copies in flight die with the runtime, as its messages do
        for actor in self._actors:
            inbox: _SimMailbox = actor.actor_inbox  # type: ignore[assignment]
            actor.fail_pending(inbox.drain())


class SimulatedKinds(ActorKinds):
    """:class:`ActorKinds` for a simulation: drivers and hosts on one :class:`DeterministicKind`,
    timers on a :class:`VirtualTimers`: ``Runtime.in_memory(kinds=SimulatedKinds(seed))``."""

    allows_async = False
    threaded = False  # recover="background" recovers before open returns: one thread

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
