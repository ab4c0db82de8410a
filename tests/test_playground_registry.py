"""The playground's command table: each command registers itself with its help, once.

Why: the commands live in one module per group and register through ``@command``; a name
registered twice would silently replace a command, and a command without usage or summary
would leave ``help`` blank.
"""

from __future__ import annotations

import pytest

from sagactor.playground.commands import COMMANDS, command, lookup
from sagactor.playground.session import Session


def test_every_command_has_its_help() -> None:
    assert len(COMMANDS) >= 20
    for name, entry in COMMANDS.items():
        assert entry.name == name
        assert entry.usage.split()[0] == name, entry.usage
        assert entry.summary.strip(), name
        for alias in entry.aliases:
            assert lookup(alias) is entry


def test_help_lists_the_commands_in_their_order() -> None:
    names = list(COMMANDS)
    assert names[:3] == ["start", "fault", "faults"]
    assert names[-4:] == ["py", "sleep", "help", "quit"]


def test_a_name_registered_twice_is_refused() -> None:
    before = dict(COMMANDS)

    def again(shell: Session, args: list[str]) -> None:
        raise AssertionError("never runs")

    with pytest.raises(ValueError, match="'start' is registered twice"):
        command("start", usage="start", summary="a second start")(again)
    assert before == COMMANDS
