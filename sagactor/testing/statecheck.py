"""Turn on the state check for the runtimes a test suite creates.

    # conftest.py
    import sagactor.testing

    sagactor.testing.check_state()      # every Runtime created from now on checks

A handler that then changes ``self.state`` without ``ctx.record`` fails its step with
:class:`~sagactor.UnrecordedChange`, naming the handler (see ``Runtime(check_state=...)``).
"""

from __future__ import annotations

from ..actors import statecheck

__all__ = ["check_state"]


def check_state(enabled: bool = True) -> bool:
    """Make runtimes created from now on (without an explicit ``check_state=``) check that
    every change of a participant's state was recorded. Returns the previous setting, to
    restore it: ``previous = check_state(); ...; check_state(previous)``."""
    return statecheck.set_default(enabled)
