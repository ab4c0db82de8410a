"""What one runtime knows: its participants (each in its host actor) and its saga definitions
(several versions of one name at once: see :mod:`~sagactor.sagas.versions`).

Registering a participant starts its host and learns its declarations (the types its actions
return, the events it reacts to); defining a saga checks it against those participants. The
engine and the history read these tables on the callers' threads; only this class writes them.
The actors never see them: after each change they get an immutable :class:`Directory` (sent by
the engine, through ``on_change``), before any saga that needs it starts.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

import pykka

from .actor_messages import Directory
from .actors.concurrent import ConcurrentHost, concurrency_of
from .actors.environment import Environment
from .actors.host import ParticipantHost
from .actors.kinds import ActorKinds
from .actors.participant import Participant, reactions_of
from .actors.portal import has_async_handlers
from .errors import DefinitionError, UnknownParticipant
from .messages import SagaStarted
from .names import saga_stream
from .persistence.recovery import decode_saga_events
from .sagas.children import ChildSpec, check_children, result_key, result_step
from .sagas.definition import Choreography, Saga
from .sagas.outcomes import result_type
from .sagas.versions import Definitions
from .sagas.workflow import Reactions, check, event_types

__all__ = ["Catalog"]


class Catalog:
    """The participants and definitions of one runtime, by name."""

    def __init__(
        self, env: Environment, kinds: ActorKinds, on_change: Callable[[], None] = lambda: None
    ) -> None:
        self.env = env
        self.kinds = kinds
        self.on_change = on_change  # called after each change, on the changing thread
        self.refs: dict[str, pykka.ActorRef[Any]] = {}
        self.hosts: dict[str, ParticipantHost] = {}
        self.definitions = Definitions()  # by name (latest) and by name and version
        self.result_types: dict[tuple[str, str], Any] = {}  # (participant, action) -> type
        self.subscribers: dict[str, list[str]] = {}  # event type name -> participants
        self.event_types: dict[str, type[Any]] = {}  # event type name -> type

    def register(self, *participants: Participant[Any]) -> None:
        """Host each participant in its own actor; its state is rebuilt from the journal."""
        for participant in participants:
            if not isinstance(participant, Participant):
                raise DefinitionError(
                    repr(participant), "is not a sagactor Participant", kind="participant"
                )
            name = participant.participant_name
            if name in self.refs:
                raise DefinitionError(name, "is already registered", kind="participant")
            inline = type(participant).inline
            if has_async_handlers(participant):
                if not self.kinds.allows_async:
                    raise DefinitionError(
                        name,
                        "has async handlers, which a simulation cannot run (no event "
                        "loop thread under the deterministic kind)",
                        kind="participant",
                    )
                self.env.portal.start()  # the event loop its async handlers run on
                inline = False  # it waits for the loop: never on the scheduler
            host_type = ParticipantHost
            if concurrency_of(participant) > 1 and self.kinds.allows_async:  # not simulated
                host_type, inline = ConcurrentHost, False  # its calls have threads of their own
            host = host_type.launch(self.kinds.host(inline), participant, self.env)
            self.refs[name] = host.actor_ref
            self.hosts[name] = host
            for action_name, spec in type(participant)._actions.items():
                self.result_types[(name, action_name)] = spec.returns
            for kind, emits in reactions_of([participant])[name].items():
                self.subscribers.setdefault(kind.__name__, []).append(name)
                self.event_types.update({t.__name__: t for t in (kind, *emits)})
            self.on_change()

    def directory(self) -> Directory:
        """An immutable snapshot of the tables, for the actors (see the module docstring)."""
        subscribers = {kind: tuple(names) for kind, names in self.subscribers.items()}
        return Directory(
            participants=MappingProxyType(dict(self.refs)),
            subscribers=MappingProxyType(subscribers),
            event_types=MappingProxyType(dict(self.event_types)),
            definitions=self.definitions.copy(),  # every version: a saga loads under its own
            result_types=MappingProxyType(dict(self.result_types)),
        )

    def reactions(self) -> Reactions:
        """Every registered participant's ``@on`` reactions (the workflow graph's source)."""
        return reactions_of(h.participant for h in self.hosts.values())

    def define(self, *sagas: Saga | Choreography) -> None:
        """Check each definition against the registered participants and remember it.

        A :class:`Choreography` is checked as a workflow graph (unhandled events, work without
        a compensation path, cycles): every problem found is listed in one DefinitionError.
        """
        for saga in sagas:
            if isinstance(saga, Choreography):
                reactions = self.reactions()
                problems = check(saga, reactions)
                if problems:
                    raise DefinitionError(saga.name, "; ".join(problems))
                self.event_types.update(event_types(saga, reactions))
            else:
                self._validate(saga)
                self._define_children(saga)
            self.definitions.add(saga)  # beside its other versions; by name: the latest
            self.on_change()

    def _validate(self, saga: Saga) -> None:
        if not isinstance(saga, Saga):
            raise DefinitionError(repr(saga), "is not a sagactor Saga or Choreography")
        for step in saga.steps:
            if step.pause is not None or step.child is not None:
                continue  # a Sleep, a WaitFor or a Child: no participant runs it
            host = self.hosts.get(step.participant)
            if host is None:
                raise UnknownParticipant(saga.name, step.name, step.participant, list(self.refs))
            kind = type(host.participant)
            if step.action not in kind._actions:
                raise DefinitionError(
                    saga.name,
                    f"participant {step.participant!r} has no action {step.action!r} "
                    f"(it has: {', '.join(sorted(kind._actions)) or 'none'})",
                    step=step.name,
                )
            # A retriable step (after the pivot) is never compensated: it needs no undo.
            if step.compensable and not step.retriable and step.action not in kind._compensations:
                raise DefinitionError(
                    saga.name,
                    f"step is compensable but participant {step.participant!r} has no "
                    f"@compensation({step.action!r}); add one or mark the step compensable=False",
                    step=step.name,
                )

    def _define_children(self, saga: Saga) -> None:
        """Check ``saga``'s child sagas (registered, no cycle), define those given as objects,
        and learn the type of each child step's result (its child's result step's, or a
        choreography's completed event)."""

        def registered(name: str) -> Saga | Choreography | None:
            return self.definitions.get(name)

        children = check_children(saga, registered)
        for child in children:
            if self.definitions.exact(child.name, child.version) is None:
                self.define(child)
        for parent in reversed((saga, *children)):  # bottom up
            for step in parent.steps if isinstance(parent, Saga) else ():
                if isinstance(step.child, ChildSpec):
                    given = step.child.saga
                    known = registered(given) if isinstance(given, str) else given
                    assert known is not None  # checked above
                    self.result_types[result_key(step.child)] = self._child_result(
                        step.child, known
                    )

    def _child_result(self, spec: ChildSpec, child: Saga | Choreography) -> Any:
        if isinstance(child, Choreography):
            return child.completed[0] if len(child.completed) == 1 else Any
        return result_type(self.result_types, child, result_step(spec, child))

    def definition(self, saga: Saga | Choreography | str) -> Saga | Choreography:
        """``saga`` itself, or the latest registered version of the definition it names."""
        if isinstance(saga, Saga | Choreography):
            return saga
        known = self.definitions.get(saga) if isinstance(saga, str) else None
        if known is None:
            registered = ", ".join(sorted(self.definitions)) or "none"
            raise DefinitionError(
                str(saga),
                "is neither a Saga, a Choreography nor the name of a registered one "
                f"(registered: {registered})",
            )
        return known

    def definition_of(self, saga_id: str) -> Saga | Choreography | None:
        """The registered definition of the name and version saga ``saga_id`` started under
        (None if it is not registered, or there is no such saga)."""
        first = self.env.journal.read(saga_stream(saga_id), limit=1)
        started = decode_saga_events(self.env.journal, first)[:1]
        if not started or not isinstance(started[0], SagaStarted):
            return None
        return self.definitions.exact(started[0].saga, started[0].version)

    def ref(self, participant: str) -> pykka.ActorRef[Any]:
        """The actor of a registered participant; :class:`UnknownParticipant` otherwise."""
        ref = self.refs.get(participant)
        if ref is None:
            raise UnknownParticipant("-", "-", participant, list(self.refs))
        return ref
