"""The words sagactor spells in many places, each spelled once: kinds, outcomes, modes, streams.

Journal stream names are part of the stored format (``saga/<id>`` and ``participant/<name>``);
build and parse them only through the helpers here. The ``Literal`` types name the closed sets
of strings that messages carry; the constants are their values, for code that compares.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "ACTION",
    "COMPENSATION",
    "DURABILITIES",
    "MODES",
    "NATIVE",
    "PARTICIPANT_PREFIX",
    "REACTION",
    "RUN",
    "SAGA_PREFIX",
    "SCHEDULE",
    "Durability",
    "FenceOutcome",
    "HandlerKind",
    "Mode",
    "ReplyOutcome",
    "SagaMode",
    "StepKind",
    "TimeLimit",
    "participant_of",
    "participant_stream",
    "saga_id_of",
    "saga_stream",
]

Durability = Literal["full", "relaxed"]
"""What waits for the disk: every step (``"full"``), or only a saga's start and end
(``"relaxed"``; see ``Runtime.open``)."""
DURABILITIES: Final[tuple[Durability, ...]] = ("full", "relaxed")

Mode = Literal["orchestration", "choreography"]
"""How a step-list saga runs: driven by the coordinator, or by its participants' events."""
MODES: Final[tuple[Mode, ...]] = ("orchestration", "choreography")
NATIVE: Final = "native"
"""The journaled mode of a :class:`~sagactor.Choreography` (a workflow of ``@on`` reactions)."""
SagaMode = Literal["orchestration", "choreography", "native"]
"""A saga's mode as its ``SagaStarted`` records it."""

StepKind = Literal["action", "compensation"]
"""Which half of a step a command runs."""
ACTION: Final = "action"
COMPENSATION: Final = "compensation"
HandlerKind = Literal["action", "compensation", "on"]
"""What a participant's inbox record answers: a step's action or compensation, or a reaction."""
REACTION: Final = "on"

ReplyOutcome = Literal["ok", "failed", "error"]
"""A participant's answer: done, a business failure (``StepFailed``), or a technical error."""
FenceOutcome = Literal["completed", "failed", "refused"]
"""What a fence found of a non-compensable step in doubt (see ``StepFenced``)."""

TimeLimit = Literal["run", "schedule"]
"""Which limit ran out: the handler's run (start-to-close) or the wait before it began."""
RUN: Final = "run"
SCHEDULE: Final = "schedule"

SAGA_PREFIX: Final = "saga/"
PARTICIPANT_PREFIX: Final = "participant/"


def saga_stream(saga_id: str) -> str:
    """The journal stream of a saga's own events."""
    return SAGA_PREFIX + saga_id


def participant_stream(name: str) -> str:
    """The journal stream of a participant's changes and inbox records."""
    return PARTICIPANT_PREFIX + name


def saga_id_of(stream: str) -> str | None:
    """The saga id of a saga stream; None for any other stream."""
    return stream[len(SAGA_PREFIX) :] if stream.startswith(SAGA_PREFIX) else None


def participant_of(stream: str) -> str | None:
    """The participant name of a participant stream; None for any other stream."""
    return stream[len(PARTICIPANT_PREFIX) :] if stream.startswith(PARTICIPANT_PREFIX) else None
