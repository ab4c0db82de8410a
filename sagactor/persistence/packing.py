"""One stored row per append: the records one append makes in one stream, for one saga, kept
together in a single row (schema version 4 of the SQLite journal).

An append is usually one stream's few records for one cause: a participant's state changes
and its inbox record ("message M was handled, with result R"), or a saga's decision (a step
succeeded, the next one started). Stored one row each, a 4-step saga cost 18 rows; packed, it
costs one row per append. Readers never see a pack: the journal unpacks rows into the same
records, with the same sequence numbers and distinct, gap-free positions. Records pack when
they are consecutive, of one stream, and their causes name the same saga (the text before the
first ``/``; without one, the same cause): so the ``cause`` index still finds every row a saga
caused (``Journal.read_caused``) by the row's cause, its first record's.

A pack is stored under its **last** record's ``seq`` and ``position`` (the writer sets the
position, reserving one per record), so every ``seq > after`` or ``position > after`` query of
the events table finds exactly the rows holding a record past ``after``; the reader drops the
records at or before it. Its ``type`` is the JSON array of the records' types (SQL tools can
unnest it with ``json_each``: the ``saga_events`` view does), its ``data`` the array of each
record's ``[data, ts, cause]`` (cause ``""``: the row's): JSON when every record's data is
JSON (saga events: SQL reads them with ``json_extract``), msgpack otherwise; its ``final`` its last
record's (a pack never goes past a final record). A row of one record is stored as before,
so files written by earlier versions read unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Final

import msgspec

from .journal import Record

__all__ = ["MARK", "packs", "row_count", "unpack"]

MARK: Final = "["
"""The first character of a pack's ``type`` (a JSON array); no record type starts with it."""
_Payload = list[tuple[bytes, float, str]]
_encode_payload = msgspec.msgpack.Encoder().encode
_decode_payload = msgspec.msgpack.Decoder(_Payload).decode
_encode_types = msgspec.json.Encoder().encode
_decode_types = msgspec.json.Decoder(list[str]).decode
_encode_json_payload = msgspec.json.Encoder().encode
_decode_json_payload = msgspec.json.Decoder(list[tuple[msgspec.Raw, float, str]]).decode

Row = tuple[str, int, str, bytes, float, str, int, int]
"""A row to insert: stream, seq, type, data, ts, cause, final, and the records it holds."""


def _together(records: Sequence[Record]) -> Iterator[Sequence[Record]]:
    """Runs of consecutive records of one stream and one saga, none past a final record."""
    start = 0
    for i in range(1, len(records) + 1):
        if i == len(records):
            yield records[start:i]
            return
        before, record = records[i - 1], records[i]
        if (
            before.final
            or record.stream != before.stream
            or (record.cause != before.cause and not _same_saga(record.cause, before.cause))
        ):
            yield records[start:i]
            start = i


def packs(records: Sequence[Record], now: float) -> list[Row]:
    """The rows that store ``records`` (a record without a time gets ``now``)."""
    if len(records) == 1 and records[0].type[:1] != MARK:  # the common case, kept quick
        r = records[0]
        return [(r.stream, r.seq, r.type, r.data, r.ts or now, r.cause, 1 if r.final else 0, 1)]
    rows: list[Row] = []
    for run in _together(records):
        last = run[-1]
        ts = last.ts or now
        cause = run[0].cause
        if len(run) == 1 and last.type[:1] != MARK:  # else a pack of one: read back as such
            rows.append((last.stream, last.seq, last.type, last.data, ts, last.cause,
                         1 if last.final else 0, 1))  # fmt: skip
            continue
        types = _encode_types([r.type for r in run]).decode()
        entries = [(r.data, r.ts or now, "" if r.cause == cause else r.cause) for r in run]
        data = _pack_data(entries)
        rows.append((last.stream, last.seq, types, data, ts, cause,
                     1 if last.final else 0, len(run)))  # fmt: skip
    return rows


def _pack_data(entries: list[tuple[bytes, float, str]]) -> bytes:
    """JSON when every record's data is a JSON object (a saga event: the codec's), embedded as
    it is (so it reads back byte for byte); msgpack otherwise."""
    if all(data[:1] == b"{" and math.isfinite(ts) for data, ts, _ in entries):
        return _encode_json_payload([(msgspec.Raw(data), ts, cause) for data, ts, cause in entries])
    return _encode_payload(entries)


def _same_saga(one: str, other: str) -> bool:
    saga_id, slash, _ = one.partition("/")
    return bool(slash) and other.startswith(saga_id + "/")


def row_count(records: Sequence[Record]) -> int:
    """How many rows ``records`` take when packed."""
    if len(records) < 2:
        return len(records)  # the common case, kept quick
    return sum(1 for _ in _together(records))


def unpack(row: tuple[Any, ...]) -> list[Record]:
    """The records of a stored row (position, stream, seq, type, data, ts, cause, final)."""
    position, stream, seq, type_, data, ts, cause, final = row
    if not type_.startswith(MARK):
        return [Record(stream, seq, type_, data, ts, cause, final != 0, position)]
    types = _decode_types(type_)
    payload: Any = _decode_json_payload(data) if data[:1] == b"[" else _decode_payload(data)
    last = len(types) - 1
    ended = final != 0
    found: list[Record] = []
    for i, (name, (body, at, own)) in enumerate(zip(types, payload, strict=True)):
        back = last - i
        end = ended and not back
        found.append(
            Record(stream, seq - back, name, bytes(body), at, own or cause, end, position - back)
        )
    return found
