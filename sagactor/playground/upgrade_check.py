"""``sagactor upgrade-check DB --module M``: would the in-flight sagas of DB resume under the
definitions and participants of module M? (See :func:`sagactor.testing.check_upgrade`.)

Exit status 0 if every one would, 1 if some would not (they are listed, each with why) or the
journal cannot be read. Kept apart from ``cli.py`` so the command is one parser line there.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import JournalLocked, SagactorError
from ..testing.upgrade import check_upgrade
from .domain import DomainError, load_domain

__all__ = ["add_parser", "upgrade_check"]


def add_parser(sub: Any) -> None:
    """Add ``upgrade-check`` to the ``sagactor`` command's subparsers."""
    parser = sub.add_parser(
        "upgrade-check",
        help="would the in-flight sagas resume under new code? (before a deploy)",
        description="Replay every in-flight saga of DB against the participants and sagas of "
        "MODULE (list every version you will register) and report those that would not resume.",
    )
    parser.add_argument("db", metavar="DB", help="journal file (not open by a running sagactor)")
    parser.add_argument("--module", "-m", metavar="MODULE", help="the new participants and sagas")
    parser.set_defaults(run=upgrade_check)


def upgrade_check(options: argparse.Namespace) -> int:
    """Print the report; 0 if every in-flight saga would resume."""
    try:
        domain = load_domain(options.module)
        report = check_upgrade(options.db, domain.make_participants(), domain.sagas)
    except JournalLocked:
        print(
            f"sagactor: {options.db} is open by a running sagactor; check a copy", file=sys.stderr
        )
        return 1
    except (DomainError, SagactorError) as error:
        print(f"sagactor: {error}", file=sys.stderr)
        return 1
    print(report)
    return 0 if report.ok else 1
