"""The stateful crash machine of ``test_stateful_crash`` on PostgreSQL.

The same rules (starts in both modes, injected faults, armed crash points, crashes now, I/O
faults of the journal, recoveries) and the same invariants, on a PostgreSQL journal: each
example starts from an empty journal in the test's database. Fewer examples than on SQLite
(each costs about 0.7 s: opening and closing a PostgreSQL runtime, several per example); the
ci profile runs :data:`CI_EXAMPLES`. The rules and invariants are the SQLite machine's, which
the ci profile runs 200 times; here the examples show they hold on the PostgreSQL journal.
"""

from __future__ import annotations

import os

import psycopg
import pytest
from hypothesis import settings

import sagactor as sa
from sagactor.examples.shop import make_shop
from sagactor.persistence.postgres import PostgresJournal

from .test_stateful_crash import BALANCES, SAGAS, STOCK, ShopUnderCrashes

CI_EXAMPLES = 50
DEV_EXAMPLES = 10


class ShopOnPostgres(ShopUnderCrashes):
    url = ""  # the test's database, set by the fixture below

    def __init__(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS sagactor CASCADE")  # the last example's journal
        super().__init__()
        assert isinstance(self.rt.journal, PostgresJournal)  # the machine runs on PostgreSQL

    def _open(self) -> sa.Runtime:
        return sa.Runtime.open(
            self.url,
            synchronous="normal",
            participants=make_shop(STOCK, BALANCES),
            sagas=SAGAS,
            snapshot_every=7,
        )


ShopOnPostgres.TestCase.settings = settings(
    settings(),
    stateful_step_count=12,
    max_examples=CI_EXAMPLES if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else DEV_EXAMPLES,
)


TestShopOnPostgres = ShopOnPostgres.TestCase


@pytest.fixture(autouse=True)
def _database(pg_url: str) -> None:
    ShopOnPostgres.url = pg_url
