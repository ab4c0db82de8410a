"""The threads around a journal's lease: the active runtime's heartbeat, a standby's wait.

Both only loop and call back into the journal (which owns the connections and the SQL, see
:mod:`.lease`): ``renew`` pushes the expiry on, ``take`` tries to become the active runtime.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["LeaseKeeper"]

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the lease every third of its length; or, for a standby, looks for it to be free
    every ``poll`` seconds (a quarter of its length, at most a quarter of a second)."""

    def __init__(
        self,
        name: str,
        ttl: float,
        *,
        renew: Callable[[], bool | None],
        take: Callable[[], bool],
    ) -> None:
        self._name = name
        self.ttl = ttl
        self.poll = min(0.25, ttl / 4)
        self._renew = renew  # True: renewed; False: fenced; None: the server was not reached
        self._take = take
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def keep(self, on_fenced: Callable[[], None]) -> None:
        """Start the heartbeat; ``on_fenced`` runs (once, on its thread) if the lease is lost."""

        def beat() -> None:
            while not self._stop.wait(self.ttl / 3):
                renewed = self._renew()
                if renewed is False:
                    on_fenced()
                    return

        self._spawn(beat, "heartbeat")

    def wait(self, on_taken: Callable[[], None]) -> None:
        """Start waiting for the lease; ``on_taken`` runs on the waiting thread once it is ours."""

        def look() -> None:
            while not self._stop.wait(self.poll):
                if self._take():
                    on_taken()
                    return

        self._spawn(look, "standby")

    def _spawn(self, target: Callable[[], None], role: str) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:
                log.exception("journal %r: the lease's %s thread failed", self._name, role)

        thread = threading.Thread(target=guarded, name=f"sagactor-{role}:{self._name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Stop both loops and wait for them (not for the calling thread itself)."""
        self._stop.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
