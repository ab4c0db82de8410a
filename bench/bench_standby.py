"""A standby's starts on a PostgreSQL journal: how long until the start is durable, journaled
by the active runtime (woken by NOTIFY), and its outcome read back on the standby; beside the
same saga started on the active runtime itself. Both runtimes in this process.

    python -m bench.bench_standby postgresql://.../an_empty_database [--sagas 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

import sagactor as sa
from tests.warehouse import open_runtime, shipment, shipping


def _quantiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p95 = ordered[max(0, round(len(ordered) * 0.95) - 1)]
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--sagas", type=int, default=100)
    args = parser.parse_args()
    durable: list[float] = []
    journaled: list[float] = []
    ended: list[float] = []
    local: list[float] = []
    with open_runtime(args.url) as active, open_runtime(args.url, standby=True) as standby:
        assert standby.role == "standby"
        for number in range(args.sagas):
            began = time.perf_counter()
            run = standby.start(shipping, shipment(number, "b-"), saga_id=f"b-ship-{number}")
            durable.append(time.perf_counter() - began)
            while True:
                try:
                    standby.status(run.id)
                    break
                except sa.UnknownSaga:
                    time.sleep(0.0005)
            journaled.append(time.perf_counter() - began)
            run.result(30)
            ended.append(time.perf_counter() - began)
        for number in range(args.sagas, 2 * args.sagas):
            began = time.perf_counter()
            active.start(shipping, shipment(number, "b-"), saga_id=f"b-ship-{number}").result(30)
            local.append(time.perf_counter() - began)
    print(f"standby start durable:            {_quantiles(durable)}")
    print(f"saga journaled by the active one: {_quantiles(journaled)}")
    print(f"outcome read on the standby:      {_quantiles(ended)}")
    print(f"same saga on the active itself:   {_quantiles(local)}")


if __name__ == "__main__":
    main()
