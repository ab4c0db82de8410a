"""Which of the coordinator's decisions may act before their own commit.

A participant journals its inbox record (the command's stable key, its state changes and its
reply) before it answers. So when a decision only says "step S succeeded with result R, start
the next step", every fact it rests on is already durable: if its own records are lost in a
crash, recovery resumes from the saga's last durable decision, re-sends the same commands
under the same keys, each participant answers from its inbox records, and the pure machine
takes the same decision again. Such a decision is still journaled (history, summaries, fold
and recovery read it), but the next command goes out without waiting for that commit, which
takes the coordinator's commits off the critical path of a saga's happy path.

Every other decision waits for its commit as before, because something in it is not
recomputable from durable facts: a start (nothing is durable yet), an end (its outcome is
reported and its participants drop their inbox records), a timeout, fence, deadline, cancel,
resume or operator resolution (a clock or a person decided), a failure or retry (a transient
error leaves no inbox record, and an attempt count would be lost), compensations, sleeps,
waits and signals. Once a saga takes one such decision, every later decision of it waits too
(``plain`` drops for good): a late success after a journaled timeout, say, must not be acted on
before it is durable, since recovery from the timeout alone would take another path. A saga
recovered or rebuilt from the journal is never plain. Choreography's published events are
not replies and always wait.

Appends of one actor commit in order, so by the time a waited-for decision (the end, say) is
durable, so is every deferred decision of the same saga before it; a deferred decision whose
append fails makes the saga's later appends fail too (their sequence numbers no longer
follow), and the saga is rebuilt from the journal.

Tried and not kept, and why (issue 11's "5 rows, 5 commits"):

* Holding such a decision's records back and writing them with the saga's next waited-for
  append (its end, usually) made a 4-step saga 6 rows instead of 9, but the journal then lags
  a running saga: history, status, summaries and watchers miss its progress until the end (or
  a flush after a delay), and tests that follow a saga through its history (cancel one
  mid-way, watch it) saw it late. A journal that says where every running saga is matters
  more here than 3 rows.
* Reporting the result before the end is durable (the end is recomputable on this path)
  would save the 6th sequential commit; but the end is also when participants may drop the
  saga's inbox records (``SagaEnded`` must wait for it anyway) and when status and history
  first show the saga ended, so a caller reading them after its result would race the commit.
"""

from __future__ import annotations

from typing import Any, Final

from ..actor_messages import Reply
from ..messages import SagaEvent, StepStarted, StepSucceeded
from ..sagas.state import SagaState

__all__ = ["acts_before_commit"]

_RECOMPUTABLE: Final = (StepSucceeded, StepStarted)


def acts_before_commit(state: SagaState, message: Any, events: list[SagaEvent]) -> bool:
    """Whether this decision (``events``, taken on ``message``) may act before its commit.
    Clears ``state.plain`` for good when it may not."""
    if not state.plain:
        return False
    if (
        type(message) is Reply
        and message.outcome == "ok"
        and not state.status.terminal
        and all(isinstance(event, _RECOMPUTABLE) for event in events)
    ):
        return True
    state.plain = False
    return False
