"""What storing saga events as JSON (schema version 4, :mod:`sagactor.codec`) costs the write
path, beside msgpack (what versions before 4 stored), for the events of one 4-step saga of the
example shop: encoding (the saga actor, per commit), decoding (the journal's summary fold on
its writing thread, recovery, history) and the bytes stored. ``python bench/bench_codec.py``.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sagactor.codec import decode_event, encode_event
from sagactor.examples.shop import Charge, Order, Reservation, Shipment
from sagactor.messages import SagaCompleted, SagaEvent, SagaStarted, StepStarted, StepSucceeded


def saga_events() -> list[Any]:
    """The ten events a 4-step shop saga journals, with the shop's own payloads."""
    raw = msgspec.msgpack.encode
    order = Order("o-1", "alice", "sku-1", 1, 10)
    results = [
        ("reserve_inventory", Reservation("o-1/reserve_inventory", "sku-1", 1)),
        ("charge_payment", Charge("o-1/charge_payment", "alice", 10)),
        ("create_shipment", Shipment("o-1/create_shipment", "o-1", "1 Main St")),
        ("notify", None),
    ]
    events: list[Any] = [
        SagaStarted(
            saga="order",
            version=1,
            mode="orchestration",
            input=msgspec.Raw(raw(order)),
            digest="0123456789abcdef",
        )
    ]
    for step, result in results:
        events.append(StepStarted(step=step, attempt=1))
        events.append(StepSucceeded(step=step, result=msgspec.Raw(raw(result))))
    events.append(SagaCompleted())
    return events


def per_saga(call: Any, number: int) -> float:
    """Microseconds per call, the best of five runs."""
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=5000)
    n = parser.parse_args(argv).number
    events = saga_events()
    as_msgpack = [msgspec.msgpack.encode(e) for e in events]
    as_json = [encode_event(e) for e in events]
    old_decoder = msgspec.msgpack.Decoder(SagaEvent)
    encode_old = per_saga(lambda: [msgspec.msgpack.encode(e) for e in events], n)
    encode_new = per_saga(lambda: [encode_event(e) for e in events], n)
    decode_old = per_saga(lambda: [old_decoder.decode(d) for d in as_msgpack], n)
    decode_new = per_saga(lambda: [decode_event(d) for d in as_json], n)
    print(f"one 4-step saga: {len(events)} events, µs per saga (best of 5 x {n})")
    for what, old, new in (("encode", encode_old, encode_new), ("decode", decode_old, decode_new)):
        print(f"  {what}  msgpack {old:6.1f}   json {new:6.1f}   +{new - old:.1f}")
    size_old, size_new = sum(map(len, as_msgpack)), sum(map(len, as_json))
    print(f"  bytes   msgpack {size_old:6d}   json {size_new:6d}   x{size_new / size_old:.2f}")


if __name__ == "__main__":
    main()
