"""Child sagas: a step that runs a saga of its own (:func:`Child`). Pure.

Nested sagas (Garcia-Molina and Salem): a child's work is provisional until its parent ends.
The child's id is ``<parent id>/<step>``, so a resend or a recovery finds the child it started
and never starts a second one (a caller's id cannot contain ``/``, so no caller can take it).

When every step of a child succeeded it journals :class:`~sagactor.messages.ChildDone`, not
``SagaCompleted``: its result becomes the parent step's result and it stays open, *held*. When
the parent completes, the child is released (``SagaCompleted``); when the parent compensates
the step, the child is cancelled, so its own compensations undo its steps in reverse. A child
still running when its step is compensated (in doubt: the parent was cancelled, a sibling
failed) is cancelled the same way. Holding the child open, rather than reopening a completed
saga, keeps "completed" final: nothing of a completed saga ever runs again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..actor_messages import Reply
from ..errors import ChildSagaCycle, DefinitionError, UnknownChildSaga
from ..messages import ChildDone, SagaCompleted, SagaEvent, SagaStatus
from ..names import ACTION
from .definition import Choreography, Saga
from .state import SagaState
from .steps import Step

__all__ = [
    "CHILD_PARTICIPANT",
    "Child",
    "ChildInput",
    "ChildSpec",
    "answer",
    "check_children",
    "child_id",
    "completion",
    "result_key",
    "result_step",
]

CHILD_PARTICIPANT = "sagactor.child"  # the participant a Child step names: the runtime runs it


@dataclass(frozen=True, slots=True)
class ChildInput:
    """What ``Child(input=...)`` reads to build the child's input: the parent's id and input,
    and the results of the parent's earlier steps (as ``ctx.results`` gives them)."""

    saga_id: str
    input: Any
    results: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """The saga a :func:`Child` step runs (a :class:`Saga`, or a registered one's name), how
    its input is made, and which of its steps' results is the step's result ("": its last)."""

    saga: Saga | Choreography | str
    input: Callable[[ChildInput], Any] | None = None
    result: str = ""

    @property
    def saga_name(self) -> str:
        return self.saga if isinstance(self.saga, str) else self.saga.name


def Child(  # noqa: N802 - a step kind, spelled like the other step types
    name: str,
    saga: Saga | Choreography | str,
    *,
    input: Callable[[ChildInput], Any] | None = None,
    result: str | None = None,
    pivot: bool = False,
) -> Step:
    """A step that runs the saga ``saga`` (its definition, or a registered one's name) as a
    child, in the parent's mode, with id ``<parent id>/<name>``; the step's outcome is the
    child's. ``input`` makes the child's input from a :class:`ChildInput` (by default the
    child gets the parent's input); the step's result (``ctx.results[name]`` for later steps)
    is the result of the child's step ``result`` (by default its last step).

    Compensating the step compensates the child: its completed steps are undone in reverse by
    their own compensations (see the module docstring). A child saga that has a pivot can
    never be undone once past it, so it may run only as the parent's pivot (``pivot=True``).

    A hybrid flow: ``saga`` may be a native :class:`Choreography` (choreography between
    bounded contexts, orchestration within). The step then publishes its start event (what
    ``input`` returns) as a choreography of id ``<parent id>/<name>``, and waits for its
    terminal event: a completed one is the step's result, a failed one (the choreography
    undid its own work) fails the step. A choreography cannot be undone from outside once it
    completed, so such a step must be the parent's pivot (``pivot=True``).
    """
    if not isinstance(name, str) or "/" in name:
        raise DefinitionError(
            str(name), "a child step's name cannot contain '/' (it makes the child's id)"
        )
    if not isinstance(saga, Saga | Choreography | str) or not saga:
        raise DefinitionError(
            name, f"Child needs a Saga, a Choreography or a saga's name, not {saga!r}"
        )
    if input is not None and not callable(input):
        raise DefinitionError(name, "Child's input must be a function of a ChildInput")
    spec = ChildSpec(saga, input, result or "")
    if not isinstance(saga, str):
        _check_spec(name, name, spec, saga, pivot)
    return Step(name, CHILD_PARTICIPANT, spec.saga_name, pivot=pivot, child=spec)


def child_id(parent: str, step: str) -> str:
    """The id of the child saga that step ``step`` of saga ``parent`` runs."""
    return f"{parent}/{step}"


def result_step(spec: ChildSpec, child: Saga | Choreography) -> str:
    """The child's step whose result is the :func:`Child` step's result ("" for a
    choreography: its terminal event is)."""
    if isinstance(child, Choreography):
        return ""
    return spec.result or child.steps[-1].name


def result_key(spec: ChildSpec) -> tuple[str, str]:
    """The key of a child step's result type in a runtime's table of result types."""
    return CHILD_PARTICIPANT, f"{spec.saga_name}#{spec.result}"


def completion(state: SagaState) -> SagaEvent:
    """The event a saga whose steps all succeeded ends its run with: a child is held."""
    return ChildDone() if state.parent else SagaCompleted()


def answer(child: SagaState, kind: str, attempt: int, result: str) -> Reply | None:
    """The reply to the parent's ``kind`` command (at ``attempt``) that ``child`` gives now,
    or None while it has none yet. ``result`` names the child's step whose result counts."""
    parent, step = child.saga_id.rsplit("/", 1)
    status = child.status
    if status is SagaStatus.STUCK:
        return Reply(
            parent, step, kind, attempt, "error", reason=f"child saga stuck: {child.reason}"
        )
    if kind == ACTION:
        if status is SagaStatus.COMPENSATED:
            return Reply(parent, step, kind, attempt, "failed", reason=child.reason)
        if child.held or status is SagaStatus.COMPLETED:
            raw = child.raws.get(result) or _NONE  # the caller decodes it for the parent
            return Reply(parent, step, kind, attempt, "ok", raw=raw)
        return None
    if status is SagaStatus.COMPENSATED:
        return Reply(parent, step, kind, attempt, "ok")
    if status is SagaStatus.COMPLETED:
        reason = "the child saga completed already (its parent released it): nothing to undo"
        return Reply(parent, step, kind, attempt, "error", reason=reason)
    return None


def check_children(
    saga: Saga, resolve: Callable[[str], Saga | Choreography | None]
) -> list[Saga | Choreography]:
    """Check the child steps of ``saga`` and of its children, all the way down; the child
    definitions found (to register). ``resolve`` finds a registered saga by name.

    Raises:
        UnknownChildSaga: A child named by a name that is not registered.
        ChildSagaCycle: Children lead back to a saga on the way (it would start itself).
        DefinitionError: A child with a pivot not run as the pivot; an unknown result step.
    """
    found: list[Saga | Choreography] = []

    def visit(parent: Saga, path: tuple[str, ...]) -> None:
        for step in parent.steps:
            spec = step.child
            if not isinstance(spec, ChildSpec):
                continue
            if spec.saga_name in path:
                raise ChildSagaCycle(parent.name, step.name, [*path, spec.saga_name])
            child = resolve(spec.saga) if isinstance(spec.saga, str) else spec.saga
            if child is None:
                raise UnknownChildSaga(parent.name, step.name, spec.saga_name)
            _check_spec(parent.name, step.name, spec, child, step.pivot)
            if child not in found:
                found.append(child)
            if isinstance(child, Saga):
                visit(child, (*path, child.name))

    visit(saga, (saga.name,))
    return found


def _check_spec(
    saga: str, step: str, spec: ChildSpec, child: Saga | Choreography, pivot: bool
) -> None:
    if isinstance(child, Choreography):
        if not pivot or spec.result:
            raise DefinitionError(
                saga,
                f"a choreography ({child.name!r}) cannot be undone from outside once it "
                "completed, so it runs only as the pivot (Child(..., pivot=True)); its "
                "terminal event is the step's result (no result=)",
                step=step,
            )
        return
    if child.pivot and not pivot:
        raise DefinitionError(
            saga,
            f"the child saga {child.name!r} has a pivot, so it cannot be undone once past it: "
            "run it as the pivot (Child(..., pivot=True))",
            step=step,
        )
    if spec.result and spec.result not in {s.name for s in child.steps}:
        raise DefinitionError(
            saga, f"the child saga {child.name!r} has no step {spec.result!r}", step=step
        )


_NONE = Reply("", "", "", 0, "ok").raw  # msgpack nil: a result step that returned nothing
