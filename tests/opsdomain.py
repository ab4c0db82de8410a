"""A small domain for the operations tests: a ledger that holds and frees amounts, and a
courier whose compensation fails while ``broken`` is set (to make sagas stuck)."""

from __future__ import annotations

from typing import Any

import msgspec

import sagactor as sa

WAIT = 10.0


class Order(msgspec.Struct, frozen=True):
    ref: str
    amount: int
    fail_at: str = ""  # the step whose action fails (a business failure)


class Books(msgspec.Struct):
    held: dict[str, int] = msgspec.field(default_factory=dict)


class Held(msgspec.Struct, frozen=True):
    key: str
    amount: int


class Freed(msgspec.Struct, frozen=True):
    key: str


class Ledger(sa.Participant[Books]):
    name = "ledger"

    def initial_state(self) -> Books:
        return Books()

    @sa.evolve
    def held(self, state: Books, change: Held) -> None:
        state.held[change.key] = change.amount

    @sa.evolve
    def freed(self, state: Books, change: Freed) -> None:
        state.held.pop(change.key, None)

    @sa.action("hold")
    def hold(self, ctx: sa.StepContext, order: Order) -> int:
        if order.fail_at == ctx.step:
            raise sa.StepFailed(f"{ctx.step} refused {order.ref}")
        ctx.record(Held(ctx.idempotency_key, order.amount))
        return order.amount

    @sa.compensation("hold")
    def free(self, ctx: sa.StepContext, order: Order, done: int) -> None:
        ctx.record(Freed(ctx.idempotency_key))


class Courier(sa.Participant[Books]):
    """Ships; its compensation (recall) fails while ``broken``."""

    name = "courier"
    broken = False

    def initial_state(self) -> Books:
        return Books()

    @sa.action("ship")
    def ship(self, ctx: sa.StepContext, order: Order) -> str:
        if order.fail_at == ctx.step:
            raise sa.StepFailed(f"{ctx.step} refused {order.ref}")
        return f"parcel-{order.ref}"

    @sa.compensation("ship")
    def recall(self, ctx: sa.StepContext, order: Order, done: str) -> None:
        if type(self).broken:
            raise RuntimeError("the courier's line is down")


NO_WAIT = sa.RetryPolicy(max_attempts=2, backoff=0.0)

ORDER = sa.Saga(
    "order",
    steps=[
        sa.Step("reserve", participant="ledger", action="hold"),
        sa.Step("ship", participant="courier", action="ship", compensation_retry=NO_WAIT),
        sa.Step("charge", participant="ledger", action="hold"),
    ],
    input_type=Order,
)


def participants() -> list[sa.Participant[Any]]:
    return [Ledger(), Courier()]
