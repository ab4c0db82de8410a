"""The active runtime of the multi-process tests: the warehouse domain on a PostgreSQL journal
with a short lease, its courier slow (so that sagas are in flight when it is killed or
paused). It prints ``ready``, then each saga id once its ``start`` returned; a start refused
because the runtime died prints ``died <error>`` and exits with status 3."""

from __future__ import annotations

import sys

import sagactor as sa

from .warehouse import MODES, open_runtime, shipment, shipping


def main(url: str, prefix: str, lease: float) -> None:
    rt = open_runtime(url, lease=lease)
    rt.inject("courier", "book", sa.Fault("delay", seconds=0.2))
    print("ready", flush=True)
    number = 0
    try:
        while True:
            for mode in MODES:
                number += 1
                order = shipment(number, prefix)
                print(rt.start(shipping, order, saga_id=order.id, mode=mode).id, flush=True)
    except sa.SagactorError as error:
        print(f"died {type(error).__name__}: {error}", flush=True)
        sys.exit(3)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]))
