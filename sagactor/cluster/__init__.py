"""Several runtimes on one PostgreSQL journal: one active, the others hot standbys.

The journal's lease (see :mod:`sagactor.persistence.postgres.lease`) makes one runtime the
active one: it alone runs sagas and writes. A runtime opened with ``standby=True`` while
another holds the lease is a standby: its engine reads the journal through a
:class:`StandbyView` (status, result, history, list work; nothing is written), its starts are
forwarded through the ``starts`` table to the active runtime (a :class:`RemoteRun` waits for
their outcome by reading the journal), and it waits for the lease. Once it has the lease,
:class:`Membership` makes it active: a new engine over the journal, its participants folded
from the journal as it now is, the in-flight sagas recovered through the normal path (the
pending commands re-sent with their original message keys, which the participants' inboxes
absorb), and a :class:`StartsConsumer` that starts what standbys ask for.
"""

from .membership import Clustered, Membership, membership
from .remote import RemoteRun, StartsConsumer
from .view import StandbyView, require_active

__all__ = [
    "Clustered",
    "Membership",
    "RemoteRun",
    "StandbyView",
    "StartsConsumer",
    "membership",
    "require_active",
]
