"""A throwaway PostgreSQL cluster for the tests: one per session, a fresh database per test.

``scripts/pg-cluster`` makes and starts it (initdb and pg_ctl under a temporary directory, as
an unprivileged user when the tests run as root) the first time a test asks for ``pg_url``,
and stops it when the session ends. PostgreSQL tests are never skipped: a cluster that cannot
start fails them, with the script's own words.

Each test's database is made while the test before it runs, and dropped after it while the
next one runs (one helper thread): ``CREATE DATABASE`` and ``DROP DATABASE`` cost 0.1-0.4 s
each on a busy machine, over a hundred times per session.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

__all__ = ["Cluster", "pg_class_url", "pg_cluster", "pg_url"]

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg-cluster"


class Cluster:
    """A running cluster; :meth:`create_database` gives each test its own database."""

    _numbers = itertools.count(1)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = _script("start", root)
        self._helper = ThreadPoolExecutor(1, thread_name_prefix="pg-test-databases")
        self._lock = threading.Lock()
        self._ahead: Future[str] | None = None
        self._drops: list[Future[None]] = []

    def database_url(self, name: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, autocommit=True)

    def create_database(self, *, encoding: str = "UTF8") -> str:
        """A new, empty database (a copy of template0); its URL."""
        name = f"test_{next(self._numbers)}"
        with self.admin() as conn:
            conn.execute(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING '{encoding}' LOCALE 'C'"
            )
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        name = urllib.parse.urlsplit(url).path.lstrip("/")
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def take_database(self) -> str:
        """A new, empty database, made ahead; the next one is begun at once."""
        with self._lock:
            ahead = self._ahead or self._helper.submit(self.create_database)
            self._ahead = self._helper.submit(self.create_database)
            dropped = [drop for drop in self._drops if drop.done()]
            self._drops = [drop for drop in self._drops if not drop.done()]
        for drop in dropped:
            drop.result()  # a drop that failed fails the next test's setup
        return ahead.result()

    def give_back(self, url: str) -> None:
        """Drop ``url`` (``WITH (FORCE)``: any session left is ended) in the helper thread."""
        with self._lock:
            self._drops.append(self._helper.submit(self.drop_database, url))

    def stop(self) -> None:
        try:
            self._helper.shutdown(wait=True)  # the last drops and the one made ahead, done
            for drop in self._drops:
                drop.result()
        finally:
            _script("stop", self.root)


def _script(command: str, root: Path) -> str:
    done = subprocess.run(
        [str(SCRIPT), command, str(root)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(
            f"the PostgreSQL test cluster ({SCRIPT.name} {command}) failed, exit status "
            f"{done.returncode}:\n{done.stderr.strip()}",
            pytrace=False,
        )
    return done.stdout.strip()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's cluster, started on first use."""
    # Not pytest's tmp_path: its parents are closed to the unprivileged user running the server.
    root = Path(tempfile.mkdtemp(prefix="sagactor-pg-"))
    try:
        cluster = Cluster(root)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a new database of the session's cluster, dropped after the test."""
    url = pg_cluster.take_database()
    yield url
    pg_cluster.give_back(url)


@pytest.fixture(scope="class")
def pg_class_url(pg_cluster: Cluster) -> Iterator[str]:
    """A new database shared by a test class's tests (each gives itself a schema of its own)."""
    url = pg_cluster.take_database()
    yield url
    pg_cluster.give_back(url)
