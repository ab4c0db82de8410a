"""A throwaway PostgreSQL cluster for the tests: one per session, a fresh database per test.

``scripts/pg-cluster`` makes and starts it (initdb and pg_ctl under a temporary directory, as
an unprivileged user when the tests run as root) the first time a test asks for ``pg_url``,
and stops it when the session ends. PostgreSQL tests are never skipped: a cluster that cannot
start fails them, with the script's own words.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

__all__ = ["Cluster", "pg_cluster", "pg_url"]

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg-cluster"


class Cluster:
    """A running cluster; :meth:`create_database` gives each test its own database."""

    _numbers = itertools.count(1)

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = _script("start", root)

    def database_url(self, name: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url, autocommit=True)

    def create_database(self, *, encoding: str = "UTF8") -> str:
        """A new, empty database (template0 copies in a few milliseconds); its URL."""
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

    def stop(self) -> None:
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
    url = pg_cluster.create_database()
    yield url
    pg_cluster.drop_database(url)
