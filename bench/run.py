"""All benchmarks in one run (``make bench``): core, durable, async, footprint. Figures and
ratios only. The footprint bench runs 200,000 sagas in memory and durable (several minutes).

``--quick`` passes a smaller scale to the durable and footprint benchmarks (a smoke run).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_async, bench_core, bench_durable, bench_footprint


def main() -> None:
    logging.getLogger("sagactor").setLevel(logging.ERROR)  # the recovery bench crashes on purpose
    quick = "--quick" in sys.argv[1:]
    for title, run, argv in (
        ("core: in-memory runtime vs bare pykka", bench_core.main, []),
        (
            "durable: SQLite journal vs in-memory and raw sqlite3",
            bench_durable.main,
            ["--quick"] if quick else [],
        ),
        ("async handlers vs sync handlers", bench_async.main, ["--sagas", "500"] if quick else []),
        (
            "footprint: memory, snapshots and history latency as sagas accumulate",
            bench_footprint.main,
            ["--sagas", "20000", "--every", "5000"] if quick else [],
        ),
    ):
        print(f"\n=== {title} ===")
        sys.argv = [title, *argv]
        run()


if __name__ == "__main__":
    main()
