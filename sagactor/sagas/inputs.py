"""A saga's input, checked and encoded before anything is journaled.

The input is converted to the definition's ``input_type`` (a dict or a dataclass becomes the
Struct it describes), encoded, then decoded again: the handlers get that decoded value, live and
after a restart alike, and a value that would not decode at recovery is refused at ``start``
rather than found in the journal later.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec

from .. import clock
from ..errors import DefinitionError, PayloadError
from .definition import Choreography, Saga

__all__ = ["Start", "describe", "digest_key", "input_digest", "prepare_input", "prepare_starts"]

_MISSING = re.compile(r"missing required field `([^`]*)`")


class Start(NamedTuple):
    """One saga to start: its input as handlers get it, encoded, its id and the input's digest."""

    value: Any
    raw: bytes
    saga_id: str
    digest: str


def prepare_starts(
    saga: Saga | Choreography, inputs: Sequence[Any], saga_ids: Sequence[str] | None
) -> list[Start]:
    """Every input checked before any saga starts: a bad one must not leave half a batch
    started. Ids not given are made up (random).

    Raises:
        DefinitionError: A choreography's input is not its start event, an id is malformed,
            or ``saga_ids`` and ``inputs`` differ in length.
        PayloadError: An input does not fit the saga's input type.
    """
    if isinstance(saga, Choreography):
        for value in inputs:
            if not isinstance(value, saga.start):
                raise DefinitionError(
                    saga.name, f"starts with a {saga.start.__name__}, not {value!r}"
                )
    if saga_ids is not None and len(saga_ids) != len(inputs):
        raise DefinitionError(saga.name, "saga_ids and inputs differ in length")
    starts = []
    for index, given in enumerate(inputs):
        value, raw = prepare_input(saga, given)
        saga_id = saga_ids[index] if saga_ids is not None else clock.fresh_id()
        _check_saga_id(saga.name, saga_id)
        starts.append(Start(value, raw, saga_id, input_digest(raw)))
    return starts


def input_digest(raw: bytes) -> str:
    """The digest of an encoded input: a start with a taken id is the same run only if its
    input's digest is the same (see :class:`~sagactor.SagaIdConflict`)."""
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def digest_key(digest: str) -> int | str:
    """What a saga in flight keeps of its input's digest: the 128-bit number a hex digest
    spells (44 B, not the 81 B of its text). Two digests give equal keys only if they are
    equal: one that is not such a digest (a foreign journal's) is kept as it is."""
    if len(digest) == 32:
        try:
            number = int(digest, 16)
        except ValueError:
            return digest
        if f"{number:032x}" == digest:
            return number
    return digest


def _check_saga_id(saga: str, saga_id: str) -> None:
    if not isinstance(saga_id, str) or not saga_id or "/" in saga_id or saga_id != saga_id.strip():
        raise DefinitionError(
            saga, f"saga id {saga_id!r} must be a non-empty string without '/' or spaces around"
        )


def prepare_input(saga: Saga | Choreography, value: Any) -> tuple[Any, bytes]:
    """``(the value handlers get, its msgpack bytes)`` for ``value`` as ``saga``'s input.

    Raises:
        PayloadError: The value does not fit the input type, or msgspec cannot encode it.
    """
    wanted: Any = saga.start if isinstance(saga, Choreography) else saga.input_type
    if wanted is not None and not _is_a(value, wanted):
        try:
            value = msgspec.convert(value, wanted, from_attributes=True)
        except msgspec.ValidationError as error:
            field, problem = describe(error)
            raise PayloadError(
                "the saga input",
                error,
                saga=saga.name,
                problem=f"is not a valid {_name(wanted)}",
                detail=(f"field {field!r}: " if field else "") + problem,
                field=field,
            ) from error
    try:
        raw = msgspec.msgpack.encode(value)
    except (msgspec.EncodeError, TypeError, OverflowError) as error:
        raise PayloadError("the saga input", error, saga=saga.name) from error
    try:
        return msgspec.msgpack.decode(raw, type=wanted or Any), raw
    except msgspec.DecodeError as error:  # it encodes, but would not decode at recovery
        raise PayloadError(
            "the saga input", error, saga=saga.name, problem="cannot be decoded back"
        ) from error


def describe(error: msgspec.ValidationError) -> tuple[str, str]:
    """``(field path, problem)`` of a msgspec validation error, in words: ``("trip.nights",
    "expected `int`, got `str`")``; the path is empty when the whole value is wrong."""
    problem, _, at = str(error).partition(" - at `")
    path = at.removesuffix("`").removeprefix("$")
    missing = _MISSING.search(problem)
    if missing:
        path += f".{missing.group(1)}"
    return path.removeprefix("."), problem[:1].lower() + problem[1:]


def _is_a(value: Any, kind: Any) -> bool:
    """Already of that type (then it needs no conversion: the common case, made cheap)."""
    try:
        return isinstance(value, kind)
    except TypeError:  # a parametrised generic, a Literal...: let msgspec judge
        return False


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or repr(kind)
