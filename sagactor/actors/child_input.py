"""What a ``Child`` step's child starts with, for both kinds of child: an orchestrated saga
(:mod:`.children`) or a native choreography (:mod:`.flows`).

The parent's input, or what the step's ``input`` function makes of it and the results of the
steps before; checked as a start's input is (a choreography's must be its start event). Any
failure on the way (the child not registered, the user's function raising, an input that does
not fit) is the step's business failure: the parent's action is answered ``failed``, never
retried, and the parent compensates.
"""

from __future__ import annotations

from typing import Any, Literal

from ..actor_messages import Reply
from ..names import ACTION
from ..sagas.children import ChildInput, ChildSpec
from ..sagas.definition import Choreography, Saga
from ..sagas.inputs import input_digest, prepare_input
from ..sagas.machine import SagaState
from ..sagas.outcomes import earlier_results
from .saga_actor import SagaActor

__all__ = ["child_input"]


def child_input(
    coordinator: SagaActor,
    parent: SagaState,
    step: str,
    attempt: int,
    definition: Saga | Choreography | None,
    what: Literal["child saga", "choreography"],
) -> tuple[Any, bytes, str] | None:
    """The input (value, msgpack, digest) of ``parent``'s child at ``step``, whose definition
    is ``definition`` (``None``: not registered); or ``None``, the step failed (answered)."""
    spec: ChildSpec = parent.definition.step(step).child
    try:
        if definition is None:
            raise LookupError(f"the {what} {spec.saga_name!r} is not registered")
        given = parent.input
        if spec.input is not None:
            results = earlier_results(parent, step, ACTION, coordinator.outcomes.result_types)
            given = spec.input(ChildInput(parent.saga_id, parent.input, results))
        value, raw = prepare_input(definition, given)
        if isinstance(definition, Choreography) and not isinstance(value, definition.start):
            raise TypeError(f"starts with a {definition.start.__name__}, not {value!r}")
    except Exception as error:  # noqa: BLE001 - the user's input function: a business failure
        label = "start event" if what == "choreography" else "input"
        problem = f"the {what}'s {label}: {type(error).__name__}: {error}"
        failed = Reply(parent.saga_id, step, ACTION, attempt, "failed", reason=problem)
        coordinator.env.tell(coordinator.actor_ref, failed)
        return None
    return value, raw, input_digest(raw)
