"""Saga events are stored as JSON that SQL tools read, and read back exactly: any nested payload
(a step's result, a saga's input, a fork's carried results) comes back as the same msgpack
bytes, whatever value it holds; events an older sagactor wrote as msgpack still read."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagactor.codec import MARK, decode_event, encode_event, is_json
from sagactor.messages import (
    SagaCompleted,
    SagaStarted,
    SignalReceived,
    StepRetrying,
    StepStarted,
    StepSucceeded,
)

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()  # NaN and infinities included
    | st.text()
    | st.binary(max_size=20)
    | st.datetimes(timezones=st.none() | st.just(dt.UTC))
)
values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.dictionaries(st.integers(-5, 5), inner, max_size=3)
        | st.dictionaries(st.just(MARK), st.text(max_size=8), min_size=1)  # like our marker
    ),
    max_leaves=12,
)


def _raw(value: Any) -> msgspec.Raw:
    return msgspec.Raw(msgspec.msgpack.encode(value))


@given(values)
def test_every_payload_reads_back_as_the_same_bytes(value: Any) -> None:
    raw = _raw(value)
    for event in (
        StepSucceeded(step="s", result=raw),
        SagaStarted(saga="x", version=1, mode="orchestration", input=raw, digest="d"),
        SagaStarted(saga="x", version=1, mode="m", input=raw, digest="d", carried={"a": raw}),
        SignalReceived(name="n", signal_id="i", payload=raw),
    ):
        data = encode_event(event)
        assert is_json(data)
        assert msgspec.msgpack.encode(decode_event(data)) == msgspec.msgpack.encode(event)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=8).filter(lambda k: k != MARK), inner, max_size=4)
        ),
        max_leaves=12,
    )
)
def test_a_json_safe_result_is_stored_as_itself(value: Any) -> None:
    data = encode_event(StepSucceeded(step="s", result=_raw(value)))
    assert json.loads(data) == {"type": "StepSucceeded", "step": "s", "result": value}


def test_what_json_cannot_say_is_kept_as_its_bytes() -> None:
    for value in (b"\x00\xff", {1: "a"}, float("nan"), {MARK: "not ours"}):
        raw = _raw(value)
        stored = json.loads(encode_event(StepSucceeded(step="s", result=raw)))
        assert list(stored["result"]) == [MARK]
        assert decode_event(encode_event(StepSucceeded(step="s", result=raw))).result == raw


def test_events_written_as_msgpack_still_read() -> None:
    for event in (
        StepStarted(step="a", attempt=2, deadline=1.5),
        StepSucceeded(step="a", result=_raw({"k": [1, 2]})),
        SagaCompleted(),
    ):
        assert decode_event(msgspec.msgpack.encode(event)) == event
    old = SagaStarted(saga="x", version=1, mode="m", input=_raw(None), digest="d")
    assert decode_event(msgspec.msgpack.encode(old), SagaStarted) == old
    assert decode_event(encode_event(old), SagaStarted) == old


def test_a_non_finite_time_keeps_its_event_exact() -> None:
    forever = StepRetrying(step="a", attempt=1, error="e", due=float("inf"))
    data = encode_event(forever)
    assert not is_json(data)  # JSON would have said null
    assert decode_event(data) == forever


def test_a_damaged_payload_is_a_decode_error() -> None:
    damaged = b'{"type":"StepSucceeded","step":"s","result":{"$msgpack":"not base64!"}}'
    with pytest.raises(msgspec.DecodeError):
        decode_event(damaged)
