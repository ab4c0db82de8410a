"""File size under a steady load, retention on vs off: the example shop's sagas started at a
steady rate for a while, the journal's size (file + WAL) printed as it goes.
``python bench/bench_retention.py [--seconds 20] [--rate 200]``.

With retention (``Retention(keep_for=1, every=1)``), ended sagas' events are pruned each
second and the pages given back (incremental vacuum): the size levels off. Without, it grows
with the number of sagas run.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import sagactor as sa
from sagactor.examples.shop import Order, make_shop, order_saga


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def run(path: Path, seconds: float, rate: int, retention: sa.Retention | None) -> list[int]:
    """Start ``rate`` sagas a second for ``seconds``; the size each second."""
    sizes: list[int] = []
    shop = make_shop(stock={"sku-1": 10**9})  # never runs out
    with sa.Runtime.open(
        path, participants=shop, sagas=[order_saga], retention=retention, snapshot_every=100
    ) as rt:
        started = time.monotonic()
        n = 0
        for second in range(int(seconds)):
            orders = [Order(f"o{n + i}", "bench", "sku-1", 1, 1) for i in range(rate)]
            runs = rt.start_many(order_saga, orders, saga_ids=[o.id for o in orders])
            for r in runs:
                r.result(timeout=60)
            n += rate
            pause = started + second + 1 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            sizes.append(size(path))
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=200, help="sagas started per second")
    args = parser.parse_args(argv)
    logging.getLogger("sagactor").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        off = run(Path(tmp) / "off.db", args.seconds, args.rate, None)
        on = run(
            Path(tmp) / "on.db", args.seconds, args.rate, sa.Retention(keep_for=1.0, every=1.0)
        )
    print(f"{args.rate} sagas/s for {args.seconds:.0f} s; journal size (file + WAL), KiB")
    print(f"{'second':>6} {'retention off':>14} {'retention on':>13}")
    for second, (a, b) in enumerate(zip(off, on, strict=True), 1):
        print(f"{second:>6} {a // 1024:>14} {b // 1024:>13}")
    half = len(on) // 2
    print(
        f"growth over the second half: off {(off[-1] - off[half]) // 1024} KiB, "
        f"on {(on[-1] - on[half]) // 1024} KiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
