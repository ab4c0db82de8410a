"""How a saga event is stored in its record's ``data``: JSON (msgspec), so SQL tools read the
payload (``json_extract(payload, '$.reason')`` on the ``saga_events`` view); journals of
schema versions before 4 hold msgpack, and both are read (the first byte tells them apart:
``{`` opens a JSON object, a msgpack map starts with ``0x80``-``0x8f`` or ``0xde``).

An event's nested payloads (a saga's ``input``, a step's ``result``, a fork's ``carried``
results, a dispatched event's ``data``, a signal's ``payload``) are msgpack in memory
(``msgspec.Raw``) and stay so: :func:`encode_event` writes each as the JSON of its value when
that JSON turns back into the very same msgpack bytes, and as ``{"$msgpack": "<base64>"}``
when it would not (bytes, time-zoned datetimes, non-string keys, NaN: what JSON cannot say
exactly), so decoding gives back byte-identical events and nothing a handler reads changes. An
event that JSON cannot hold exactly at all (a non-finite time) is stored as msgpack, which
every reader also takes. Participant records (inbox, state changes, snapshots) stay msgpack.
"""

from __future__ import annotations

import base64
import math
from typing import Any, Final

import msgspec

from .messages import SagaEvent

__all__ = ["MARK", "decode_event", "encode_event", "is_json"]

MARK: Final = "$msgpack"
"""The key of an object standing for msgpack bytes that JSON could not say exactly."""

_OPEN: Final = ord("{")
_json_encode = msgspec.json.Encoder().encode
_json_events = msgspec.json.Decoder(SagaEvent)
_msgpack_events = msgspec.msgpack.Decoder(SagaEvent)
_msgpack_encode = msgspec.msgpack.Encoder().encode
_msgpack_any = msgspec.msgpack.Decoder().decode
_json_any = msgspec.json.Decoder().decode
_RAW, _RAW_MAP, _FLOAT = "raw", "raw-map", "float"


def is_json(data: bytes) -> bool:
    """Whether stored ``data`` is JSON (else msgpack)."""
    return bool(data) and data[0] == _OPEN


# What this process encoded last, by stored bytes: the journal's summary upkeep decodes each
# new event once (on its writer's thread) and takes the event itself from here instead. A
# decoded event equals the encoded one (see the module's doc); entries go once taken.
_RECENT_MAX: Final = 4096
_recent: dict[bytes, SagaEvent] = {}


def encode_event(event: SagaEvent) -> bytes:
    """``event`` as stored: JSON, its nested payloads readable (see the module's doc)."""
    data = _encode(event)
    if len(_recent) >= _RECENT_MAX:
        _recent.clear()  # not taken (a failed append, a reader that never came): forget them
    _recent[data] = event
    return data


def _encode(event: SagaEvent) -> bytes:
    kinds = _kinds(type(event))
    if not kinds:
        return _json_encode(event)
    changes: dict[str, Any] = {}
    for name, kind in kinds:
        value = getattr(event, name)
        if kind == _FLOAT:
            if not math.isfinite(value):
                return _msgpack_encode(event)  # JSON would say null: keep it exact
        elif kind == _RAW:
            changes[name] = _readable(value)
        elif value:
            changes[name] = {key: _readable(raw) for key, raw in value.items()}
    return _json_encode(msgspec.structs.replace(event, **changes) if changes else event)


def decode_event(data: bytes, wanted: Any = SagaEvent) -> Any:
    """A stored saga event (JSON or msgpack), its nested payloads msgpack again; ``wanted``
    narrows the type (``SagaStarted`` for a stream's first record, say).

    Raises:
        msgspec.DecodeError: ``data`` is neither (or not a ``wanted``).
    """
    event: Any = _recent.pop(data, None)
    if event is not None and isinstance(event, wanted):
        return event
    if not is_json(data):
        if wanted is SagaEvent:
            return _msgpack_events.decode(data)
        return msgspec.msgpack.decode(data, type=wanted)
    if wanted is SagaEvent:
        event = _json_events.decode(data)
    else:
        event = msgspec.json.decode(data, type=wanted)
    changes: dict[str, Any] = {}
    for name, kind in _kinds(type(event)):
        value = getattr(event, name)
        if kind == _RAW:
            changes[name] = _exact(value)
        elif kind == _RAW_MAP and value:
            changes[name] = {key: _exact(raw) for key, raw in value.items()}
    return msgspec.structs.replace(event, **changes) if changes else event


def _readable(raw: msgspec.Raw) -> msgspec.Raw:
    """The JSON standing for msgpack ``raw``: its value's, when that reads back exactly."""
    data = bytes(raw)
    try:
        value = _msgpack_any(data)
        if not (isinstance(value, dict) and list(value) == [MARK]):  # else it would read as one
            text = _json_encode(value)
            if _msgpack_encode(_json_any(text)) == data:
                return msgspec.Raw(text)
    except (msgspec.DecodeError, msgspec.EncodeError, TypeError, ValueError, OverflowError):
        pass  # not msgpack we can say in JSON: kept as its bytes
    return msgspec.Raw(_json_encode({MARK: base64.b64encode(data).decode("ascii")}))


def _exact(raw: msgspec.Raw) -> msgspec.Raw:
    """The msgpack bytes a stored JSON payload stands for (see :func:`_readable`)."""
    value = _json_any(raw)
    if isinstance(value, dict) and list(value) == [MARK] and isinstance(value[MARK], str):
        try:
            return msgspec.Raw(base64.b64decode(value[MARK], validate=True))
        except ValueError as error:  # a damaged record: say so as any undecodable one
            raise msgspec.DecodeError(f"{MARK} is not base64: {error}") from error
    return msgspec.Raw(_msgpack_encode(value))


_KINDS: dict[type[Any], tuple[tuple[str, str], ...]] = {}


def _kinds(cls: type[Any]) -> tuple[tuple[str, str], ...]:
    """The fields of an event type that the JSON form treats apart: nested payloads, times."""
    known = _KINDS.get(cls)
    if known is not None:
        return known
    kinds = []
    for info in msgspec.structs.fields(cls):
        if info.type is msgspec.Raw:
            kinds.append((info.name, _RAW))
        elif info.type == dict[str, msgspec.Raw]:
            kinds.append((info.name, _RAW_MAP))
        elif info.type is float:
            kinds.append((info.name, _FLOAT))
    _KINDS[cls] = tuple(kinds)
    return _KINDS[cls]
