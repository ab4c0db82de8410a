"""How actors run: the one seam, built on pykka's own hooks (inbox, future, actor loop).

pykka stays the actor API (refs, ``tell``, ``ask``); an :class:`ActorKind` decides where an
actor's messages are handled:

* :class:`ThreadKind`: one OS thread per actor (pykka's ``ThreadingActor``), kept for
  comparison and for code that must block inside a handler;
* :class:`SchedulerKind` (the default): many actors share one scheduler thread, like Akka's
  dispatcher: a ready queue of actors with mail, each run for a bounded batch of messages.
  Waking an actor costs a deque append instead of a thread switch.

The deterministic kind (:mod:`sagactor.actors.deterministic`: no thread, a seeded choice of
the next actor, virtual time) plugs in here too, as a subclass of :class:`ActorKinds`.
An actor of any kind must not block its thread for long: a scheduler thread serves every actor
of its runtime, so slow user code runs elsewhere and comes back as a message.

Failure rules match pykka's, with one change: a ``BaseException`` that is not an ``Exception``
(``KeyboardInterrupt``, ``SystemExit``, a simulated crash) escaping a handler goes to the
actor's :meth:`KindActor.on_fatal` instead of pykka's ``ActorRegistry.stop_all()``, which would
stop every actor of every runtime in the process.
"""

from __future__ import annotations

import collections
import itertools
import logging
import queue
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import pykka
from pykka import messages as pykka_messages
from pykka._envelope import Envelope

from .timers import TimerService

__all__ = ["ActorKind", "ActorKinds", "Callback", "KindActor", "SchedulerKind", "ThreadKind"]

logger = logging.getLogger("sagactor.actors")

_names = itertools.count()


class ActorKind(ABC):
    """Where and when the actors of one runtime handle their messages."""

    # Whether a journal's answer may act for an actor from the journal's own thread when it
    # only sends a message (a participant's reply once its record is durable). A simulation
    # says no: there, every message is sent on its sender's turn, so it is ordered and
    # copied as that sender's.
    replies_off_turn = True

    @abstractmethod
    def mailbox(self, actor: KindActor) -> Any:
        """A new inbox for ``actor`` (pykka's ``ActorInbox`` protocol: put, get, empty)."""

    @abstractmethod
    def launch(self, actor: KindActor) -> None:
        """Begin running ``actor``: ``on_start``, then its messages."""

    def close(self) -> None:  # noqa: B027 - a kind without threads has nothing to release
        """Release the kind's threads once every actor has stopped. Idempotent."""


class Callback:
    """A message that runs ``fn(arg)`` on its actor's turn: how work finished on another
    thread (a journal commit) comes back to the actor that owns the state it touches."""

    __slots__ = ("arg", "fn")

    def __init__(self, fn: Callable[[Any], None], arg: Any) -> None:
        self.fn = fn
        self.arg = arg

    def __call__(self) -> None:
        self.fn(self.arg)


class KindActor(pykka.Actor):
    """A pykka actor whose inbox and loop come from an :class:`ActorKind`."""

    @staticmethod
    def _create_future() -> pykka.Future[Any]:
        return pykka.ThreadingFuture()  # asked from any thread, so a thread-safe future

    def __init__(self, kind: ActorKind) -> None:
        self.kind = kind
        self._turn = 0  # the thread handling this actor's message now (0: none)
        super().__init__()

    def on_turn(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` on this actor's turn: at once if called from its turn (a journal
        that answers synchronously), else as a :class:`Callback` message (any other thread).
        Such answers run before the actor's other mail, in the order they came. Dropped if the
        actor has stopped."""
        if self._turn == threading.get_ident():
            fn(arg)
        elif not self.actor_stopped.is_set():  # stopped: nobody is left to act on it
            # Ahead of the mail: a busy actor must not hold a commit's answer (a step's reply)
            # behind every message queued after it, as Akka's system messages.
            self.actor_inbox.put_urgent(Envelope(Callback(fn, arg)))  # type: ignore[attr-defined]

    def _create_actor_inbox(self) -> Any:  # type: ignore[override]
        return self.kind.mailbox(self)

    def _start_actor_loop(self) -> None:
        self.kind.launch(self)

    def on_fatal(self, error: BaseException) -> None:
        """A ``BaseException`` escaped a handler: stop this actor only (override to do more)."""
        logger.error("%s stopped by %r", self, error)
        self._stop()

    # -- what a kind calls ------------------------------------------------------------------

    def handle_envelope(self, envelope: Envelope[Any]) -> None:
        """One message, with pykka's reply and failure rules (see the module docstring)."""
        self._turn = threading.get_ident()
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:  # noqa: BLE001 - pykka's rule: to the asker, else on_failure
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:  # noqa: BLE001 - as pykka: a failing hook is logged
                    self._handle_failure(*sys.exc_info())
        except BaseException as error:  # noqa: BLE001 - see on_fatal
            if envelope.reply_to is not None:
                envelope.reply_to.set_exception()
            self.on_fatal(error)
        finally:
            self._turn = 0

    def fail_pending(self, envelopes: collections.deque[Envelope[Any]]) -> None:
        """The actor stopped: answer what is left in its inbox, as pykka's teardown does."""
        while envelopes:
            envelope = envelopes.popleft()
            if envelope.reply_to is None:
                continue
            if isinstance(envelope.message, pykka_messages._ActorStop):
                envelope.reply_to.set(None)
            else:
                dead = pykka.ActorDeadError(f"{self.actor_ref} stopped before handling the message")
                envelope.reply_to.set_exception((pykka.ActorDeadError, dead, None))


# -- one thread per actor ----------------------------------------------------------------------


class _QueueInbox:
    """A thread's inbox: two deques and a doorbell (a C ``SimpleQueue`` of one token per
    message: far cheaper than a ``Condition``'s Python-level notify); ``urgent`` (callbacks,
    see :meth:`KindActor.on_turn`) is read before ``items``. Each token is put after its
    message, so the one reader always finds a message behind the token it takes."""

    __slots__ = ("_bell", "items", "urgent")

    def __init__(self) -> None:
        self.items: collections.deque[Envelope[Any]] = collections.deque()
        self.urgent: collections.deque[Envelope[Any]] = collections.deque()
        self._bell: queue.SimpleQueue[None] = queue.SimpleQueue()

    def put(self, envelope: Envelope[Any], /) -> None:
        self.items.append(envelope)
        self._bell.put(None)

    def put_urgent(self, envelope: Envelope[Any], /) -> None:
        self.urgent.append(envelope)
        self._bell.put(None)

    def get(self) -> Envelope[Any]:
        self._bell.get()
        return self.urgent.popleft() if self.urgent else self.items.popleft()

    def empty(self) -> bool:
        return not self.items and not self.urgent


class ThreadKind(ActorKind):
    """One daemon thread per actor: pykka's threading model, with sagactor's failure rules."""

    def mailbox(self, actor: KindActor) -> _QueueInbox:
        return _QueueInbox()

    def launch(self, actor: KindActor) -> None:
        name = f"sagactor-{type(actor).__name__}-{next(_names)}"
        threading.Thread(target=self._loop, args=(actor,), name=name, daemon=True).start()

    @staticmethod
    def _loop(actor: KindActor) -> None:
        actor._actor_loop_setup()
        inbox: _QueueInbox = actor.actor_inbox  # type: ignore[assignment]
        while not actor.actor_stopped.is_set():
            actor.handle_envelope(inbox.get())
        actor.fail_pending(inbox.urgent)
        actor.fail_pending(inbox.items)


# -- many actors, one scheduler thread ---------------------------------------------------------


class _Mailbox:
    """An actor's inbox on a scheduler: the first message to an idle actor makes it ready."""

    __slots__ = ("_actor", "_kind", "_lock", "items", "scheduled", "started", "urgent")

    def __init__(self, kind: SchedulerKind, actor: KindActor) -> None:
        self.items: collections.deque[Envelope[Any]] = collections.deque()
        self.urgent: collections.deque[Envelope[Any]] = collections.deque()  # read first
        self._lock = threading.Lock()
        self._kind = kind
        self._actor = actor
        self.scheduled = True  # not ready until launched: on_start runs first
        self.started = False

    def put(self, envelope: Envelope[Any], /) -> None:
        self._put(self.items, envelope)

    def put_urgent(self, envelope: Envelope[Any], /) -> None:
        self._put(self.urgent, envelope)

    def _put(self, lane: collections.deque[Envelope[Any]], envelope: Envelope[Any]) -> None:
        with self._lock:
            lane.append(envelope)
            if self.scheduled:
                return
            self.scheduled = True
        self._kind.ready(self._actor)

    def get(self) -> Envelope[Any]:
        return self.urgent.popleft() if self.urgent else self.items.popleft()

    def empty(self) -> bool:
        return not self.items and not self.urgent

    def settle(self) -> bool:
        """After a batch: stay ready if mail is left (True), else go idle."""
        with self._lock:
            if self.items or self.urgent:
                return True
            self.scheduled = False
            return False


class SchedulerKind(ActorKind):
    """Many actors on one thread: a ready queue, each actor run for up to ``batch`` messages.

    Fair (round robin over ready actors) and cheap: waking an idle actor appends it to a deque.
    """

    def __init__(self, name: str = "sagactor-scheduler", batch: int = 64) -> None:
        self.batch = batch
        # Ready actors, then None once closed (a C queue: readying an actor is cheap).
        self._ready: queue.SimpleQueue[KindActor | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def mailbox(self, actor: KindActor) -> _Mailbox:
        return _Mailbox(self, actor)

    def launch(self, actor: KindActor) -> None:
        self.ready(actor)  # its first turn runs on_start (see _turn)

    def ready(self, actor: KindActor) -> None:
        self._ready.put(actor)

    @property
    def on_scheduler(self) -> bool:
        """True on the scheduler's own thread (where blocking would stall every actor)."""
        return threading.current_thread() is self._thread

    def close(self) -> None:
        self._ready.put(None)
        if not self.on_scheduler:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        ready, closed = self._ready, False
        while True:
            if not closed:
                actor = ready.get()
            else:
                try:  # closed: finish the actors still ready (their stops), then end
                    actor = ready.get_nowait()
                except queue.Empty:
                    return
            if actor is None:
                closed = True
            else:
                self._turn(actor)

    def _turn(self, actor: KindActor) -> None:
        inbox: _Mailbox = actor.actor_inbox  # type: ignore[assignment]
        items, urgent = inbox.items, inbox.urgent
        if not inbox.started and not actor.actor_stopped.is_set():
            inbox.started = True
            actor._actor_loop_setup()
        for _ in range(self.batch):
            if actor.actor_stopped.is_set():
                break
            if urgent:
                actor.handle_envelope(urgent.popleft())
            elif items:
                actor.handle_envelope(items.popleft())
            else:
                break
        if actor.actor_stopped.is_set():
            actor.fail_pending(urgent)
            actor.fail_pending(items)
            return
        if inbox.settle():
            self.ready(actor)


# -- the choice, made once per runtime ---------------------------------------------------------


class ActorKinds:
    """How the actors of one runtime run: the one place that decides it.

    * the saga drivers (coordinator, dispatcher) share one :class:`SchedulerKind` thread: they
      never block (journal appends are pipelined, their answers come back as messages);
    * a participant's host runs on a thread of its own (:class:`ThreadKind`), because a user's
      handler may block: a slow handler then stalls only its own participant. A participant
      class with ``inline = True`` (and no ``async`` handler) runs on the scheduler instead,
      which saves two thread hand-offs per step: for fast handlers that never block.
    """

    allows_async = True  # async handlers run on the portal's event loop thread
    threaded = True  # actors run on threads of their own (a simulation: on the caller's)

    def __init__(self) -> None:
        self.scheduler = SchedulerKind()
        self.threads = ThreadKind()

    def timers(self) -> TimerService:
        """The runtime's timer service (a thread on the wall clock)."""
        return TimerService()

    @property
    def on_scheduler(self) -> bool:
        """True on the drivers' own thread (where blocking would stall every actor)."""
        return self.scheduler.on_scheduler

    def settle(self, until: Callable[[], bool]) -> None:
        """Before a caller blocks for the actors: threads need nothing (a simulation drives
        its actors here, on the caller's thread, until ``until()`` holds)."""

    @property
    def drivers(self) -> ActorKind:
        return self.scheduler

    def host(self, inline: bool) -> ActorKind:
        """The kind for a participant's host (``inline``: it never blocks, see above)."""
        return self.scheduler if inline else self.threads

    def close(self) -> None:
        self.threads.close()
        self.scheduler.close()
