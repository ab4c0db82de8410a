"""The participant programming model: handlers, state changes and the step context.

A participant owns private state that only its own *changes* may alter: a handler records a
change with :meth:`StepContext.record`, the participant's ``@evolve`` method for that change
type applies it, and the journal keeps it. The state is therefore the fold of the participant's
journal stream, which is what lets a restarted runtime rebuild it exactly.

Example::

    class Inventory(Participant[Stock]):
        name = "inventory"

        def initial_state(self) -> Stock:
            return Stock(items={"sku-1": 10})

        @action("reserve")
        def reserve(self, ctx: StepContext, order: Order) -> Reservation:
            if self.state.items[order.sku] < order.qty:
                raise StepFailed("out of stock")
            ctx.record(Reserved(order.id, order.sku, order.qty))
            return Reservation(order.id)

        @compensation("reserve")
        def release(self, ctx: StepContext, order: Order, done: Reservation) -> None:
            ctx.record(Released(order.id, order.sku, order.qty))

        @evolve
        def _reserved(self, state: Stock, change: Reserved) -> None:
            state.items[change.sku] -= change.qty
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from ..errors import DefinitionError, OperationRefused

__all__ = [
    "HandlerSpec",
    "Participant",
    "StepContext",
    "StepResults",
    "action",
    "apply_change",
    "compensation",
    "evolve",
    "on",
    "reactions_of",
]

S = TypeVar("S")
F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__sagactor_handler__"


def action(name: str) -> Callable[[F], F]:
    """Mark ``def handler(self, ctx, input) -> result`` as the participant's action ``name``."""
    return _mark("action", name)


def compensation(name: str) -> Callable[[F], F]:
    """Mark ``def handler(self, ctx, input, done) -> None`` as the undo of action ``name``.

    ``done`` is what the action returned. It must undo exactly what the action did, and it must
    not fail for business reasons: a compensation that raises is retried, then the saga is stuck.
    """
    return _mark("compensation", name)


def evolve(method: F) -> F:
    """Mark ``def apply(self, state, change: ChangeType) -> None``: the fold of one change type.

    It changes ``state`` in place and returns ``None``, or returns the new state (of the same
    type), which an immutable state needs (an ``int``, a frozen Struct)."""
    setattr(method, _MARK, ("evolve", ""))
    return method


def on(
    event_type: type[Any], *, emits: tuple[type[Any], ...] = (), runs: tuple[Any, ...] = ()
) -> Callable[[F], F]:
    """Mark ``def handler(self, ctx, event)`` as a native-choreography reaction to ``event_type``.

    ``emits`` lists every event type the handler may ``ctx.publish``: the workflow graph and its
    checks (unhandled events, missing compensation paths, cycles) are derived from it, and
    publishing an undeclared type is an error. ``runs`` lists the orchestrated sagas it may
    run with ``ctx.run_saga`` (a hybrid flow): the graph draws them, and when given, running
    any other is an error.
    """
    if not isinstance(event_type, type):
        raise DefinitionError("@on", f"needs an event type, not {event_type!r}", kind="decorator")

    def mark(method: F) -> F:
        setattr(method, _MARK, ("on", (event_type, tuple(emits), tuple(runs))))
        return method

    return mark


def _mark(kind: str, name: str) -> Callable[[F], F]:
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"@{kind}", f"needs a non-empty name, not {name!r}", kind="decorator")

    def mark(method: F) -> F:
        if not callable(method):
            raise DefinitionError(
                "?", f"@{kind}({name!r}) decorates {method!r}, which is not callable"
            )
        setattr(method, _MARK, (kind, name))
        return method

    return mark


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A handler, the types its arguments are converted to and the type its result is decoded
    with (``Any`` when unannotated): an action's result reads the same live and after a restart.
    """

    method: str
    arg_types: tuple[Any, ...]
    is_async: bool
    emits: tuple[type[Any], ...] = ()
    returns: Any = Any
    runs: tuple[Any, ...] = ()  # a reaction's sagas (see on)


class StepResults(Mapping[str, Any]):
    """The results of the steps before this one, by step name (a compensation: and its own
    action's), each typed as its action's return annotation declares: ``ctx.results["charge"]``
    is the ``Payment`` that ``charge`` returned. Read-only; the command carries them from the
    saga's journal, so a handler reads the same values live, on a retry and after a restart."""

    __slots__ = ("_step", "_values")

    def __init__(self, step: str, values: Mapping[str, Any]) -> None:
        self._step = step
        self._values = values

    def __getitem__(self, step: str) -> Any:
        try:
            return self._values[step]
        except KeyError:
            known = ", ".join(repr(name) for name in self._values) or "none"
            raise KeyError(
                f"no result of step {step!r} before step {self._step!r} (it can read: {known})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"StepResults({dict(self._values)!r})"


class StepContext:
    """What a handler knows about the message it handles, and how it changes state.

    ``results`` holds the earlier steps' results (see :class:`StepResults`); empty for a
    native choreography reaction, whose event carries what it needs."""

    __slots__ = (
        "_apply",
        "attempt",
        "changes",
        "kind",
        "participant",
        "published",
        "results",
        "runner",
        "saga_id",
        "step",
    )

    def __init__(
        self,
        participant: str,
        saga_id: str,
        step: str,
        kind: str,
        attempt: int,
        apply: Callable[[Any], None],
        results: Mapping[str, Any] | None = None,
    ) -> None:
        self.results = StepResults(step, results or {})
        self.participant = participant
        self.saga_id = saga_id
        self.step = step
        self.kind = kind
        self.attempt = attempt
        self.changes: list[Any] = []
        self.published: list[Any] = []
        self._apply = apply
        self.runner: Callable[[str, Any, Any, float | None], Any] | None = None  # run_saga's

    @property
    def idempotency_key(self) -> str:
        """Stable for this saga and step on every attempt and after every restart.

        Pass it to external services so a retried call does not act twice.
        """
        return f"{self.saga_id}/{self.step}"

    def record(self, change: Any) -> None:
        """Apply ``change`` to the participant's state now, and journal it with the reply.

        If the handler then raises, the change is undone (the state is rebuilt from the journal).
        """
        self._apply(change)
        self.changes.append(change)

    def publish(self, event: Any) -> None:
        """Choreography: emit ``event`` to its subscribers once this handler's changes commit."""
        self.published.append(event)

    def run_saga(self, saga: Any, input: Any, *, timeout: float | None = None) -> Any:
        """A reaction runs the orchestrated ``saga`` (registered) to its end; returns its
        :class:`~sagactor.Outcome` (a hybrid flow). Its id, ``<saga id>/<participant>.<event>``,
        lets a redelivered event find its run. Not for a saga with a step here (it would wait
        behind this reaction), nor inline or simulated participants (they cannot wait)."""
        if self.runner is None:
            raise OperationRefused(
                "run_saga",
                "only a native choreography's reaction, in a participant on a thread of its "
                "own (not inline, not simulated), can run a saga (a step: use sa.Child)",
            )
        saga_id = f"{self.saga_id}/{self.participant}.{self.step}"
        return self.runner(saga_id, saga, input, timeout)


class Participant(Generic[S]):
    """A service with private state, hosted by its own actor (one mailbox, one thread).

    Subclasses set ``name`` and define handlers with :func:`action`, :func:`compensation`,
    :func:`evolve` and (for native choreography) :func:`on`.
    """

    name: str = ""
    """Unique among a runtime's participants; a class attribute, or set per instance."""
    inline: ClassVar[bool] = False
    """True runs this participant's handlers on the runtime's scheduler thread, beside the
    saga drivers, instead of on a thread of its own: faster (no thread hand-off per step), for
    handlers that never block (no I/O, no sleep, no lock held by others). A blocking inline
    handler stalls every saga of the runtime, and so does, briefly, one that fails after
    ``ctx.record`` (the participant then reloads from the journal, waiting for pending
    writes). Ignored for a participant with ``async`` handlers: it has its own thread."""
    max_concurrency: ClassVar[int] = 1
    """How many of its action and compensation calls may run at once (a payment gateway that
    takes 5 calls at once: 5). Past it, commands wait in its mailbox, first come first served.
    Above 1 the calls run on threads of their own, one call per saga at a time, and each call's
    ``ctx.record`` changes are applied to the state when it returns (in the order calls end),
    so a handler does not see its own changes, nor others' made meanwhile: for handlers that
    wait on the outside world and whose changes commute (see :mod:`sagactor.actors.concurrent`)."""
    state: S

    _actions: ClassVar[dict[str, HandlerSpec]]
    _compensations: ClassVar[dict[str, HandlerSpec]]
    _evolvers: ClassVar[dict[type[Any], str]]
    _reactions: ClassVar[dict[type[Any], HandlerSpec]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._actions, cls._compensations, cls._evolvers, cls._reactions = {}, {}, {}, {}
        names = {attr for klass in cls.__mro__ for attr in vars(klass)}
        for attr in sorted(names):
            value = inspect.getattr_static(cls, attr)  # the override wins, as for any method
            mark = getattr(value, _MARK, None)
            if mark is not None:
                cls._collect(attr, value, mark)

    @classmethod
    def _collect(cls, attr: str, method: Any, mark: tuple[str, Any]) -> None:
        kind, key = mark
        if not callable(method):
            raise DefinitionError(
                cls.__name__, f"handler {attr!r} is not callable", kind="participant"
            )
        hints = _hints(cls, method)
        if kind == "evolve":
            if len(hints) != 2 or hints[1] is Any:
                raise DefinitionError(
                    cls.__name__,
                    f"@evolve method {attr!r} must be (self, state, change: ChangeType)",
                    kind="participant",
                )
            cls._evolvers[hints[1]] = attr
            return
        wanted = {"action": 2, "compensation": 3, "on": 2}[kind]
        if len(hints) != wanted:
            shape = {
                "action": "(self, ctx, input)",
                "compensation": "(self, ctx, input, done)",
                "on": "(self, ctx, event)",
            }[kind]
            raise DefinitionError(
                cls.__name__, f"handler {attr!r} must take {shape}", kind="participant"
            )
        emits: tuple[type[Any], ...] = ()
        runs: tuple[Any, ...] = ()
        if kind == "on":
            key, emits, runs = key
        is_async = inspect.iscoroutinefunction(method)
        returns = _returns(cls, method)
        spec = HandlerSpec(attr, tuple(hints[1:]), is_async, emits, returns, runs)
        if kind == "action":
            cls._actions[key] = spec
        elif kind == "compensation":
            cls._compensations[key] = spec
        else:
            cls._reactions[key] = spec

    def initial_state(self) -> S:
        """The state before any change; override in participants that keep state."""
        return None  # type: ignore[return-value]

    @property
    def participant_name(self) -> str:
        return self.name or type(self).__name__.lower()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.participant_name!r}>"


def reactions_of(
    participants: Iterable[Participant[Any]],
) -> dict[str, dict[type[Any], tuple[type[Any], ...]]]:
    """Each participant's ``@on`` reactions as plain data: ``name -> {event type: emits}``
    (what :mod:`sagactor.sagas.workflow` builds the workflow graph from)."""
    return {
        p.participant_name: {kind: spec.emits for kind, spec in type(p)._reactions.items()}
        for p in participants
    }


def apply_change(participant: Participant[Any], change: Any) -> None:
    """Apply one recorded change to the participant's state through its ``@evolve`` method."""
    kind = type(participant)
    method = kind._evolvers.get(type(change))
    if method is None:
        raise DefinitionError(
            kind.__name__, f"recorded a {type(change).__name__}, which no @evolve method applies"
        )
    new = getattr(participant, method)(participant.state, change)
    if new is None:
        return
    state = participant.state
    if state is None:  # snapshots decode into the type of the initial state
        problem = "initial_state() returns None: return the first state from initial_state()"
    elif not isinstance(new, type(state)):
        problem = f"the state is a {type(state).__name__}: return the new state or None"
    else:
        participant.state = new
        return
    raise DefinitionError(
        kind.__name__,
        f"@evolve method {method!r} returned {new!r} (a {type(new).__name__}), but {problem}",
        kind="participant",
    )


def _returns(cls: type, method: Any) -> Any:
    """The annotated return type of ``method`` (``Any`` if absent), which results decode to."""
    function = method.__func__ if isinstance(method, classmethod | staticmethod) else method
    returns = typing.get_type_hints(function).get("return", Any)  # resolvable: see _hints
    try:
        msgspec.msgpack.Decoder(returns)
    except TypeError as error:
        raise DefinitionError(
            cls.__name__,
            f"handler {function.__name__!r} returns {returns!r}, which msgspec cannot decode "
            f"({error}); annotate a msgspec type (a Struct, builtins) or nothing",
            kind="participant",
        ) from error
    return returns


def _hints(cls: type, method: Any) -> list[Any]:
    """The annotated types of ``method``'s parameters after ``self`` (``Any`` if absent)."""
    function = method.__func__ if isinstance(method, classmethod | staticmethod) else method
    try:
        annotations = typing.get_type_hints(function)
    except Exception as error:
        raise DefinitionError(
            cls.__name__,
            f"cannot resolve the annotations of {function.__name__!r}: {error}",
            kind="participant",
        ) from error
    parameters = list(inspect.signature(function).parameters.values())[1:]
    return [annotations.get(p.name, Any) for p in parameters]
