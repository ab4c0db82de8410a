"""A saga's input, checked and encoded before anything is journaled.

The input is converted to the definition's ``input_type`` (a dict or a dataclass becomes the
Struct it describes), encoded, then decoded again: the handlers get that decoded value, live and
after a restart alike, and a value that would not decode at recovery is refused at ``start``
rather than found in the journal later.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ..errors import PayloadError
from .definition import Choreography, Saga

__all__ = ["describe", "prepare_input"]

_MISSING = re.compile(r"missing required field `([^`]*)`")


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
