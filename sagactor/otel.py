"""OpenTelemetry traces of sagas: a listener that turns durable saga events into spans.

Needs the ``otel`` extra (``pip install 'sagactor[otel]'``, the OpenTelemetry API); the
application configures the SDK and exporter as usual. Spans take their times from the journal,
so they say when things happened, not when the listener ran:

* ``saga <name>``: from the saga's start (or, for a saga resumed by a recovery, from the first
  event seen) to its end; status ERROR when it is compensated or stuck.
* ``step <step>``: one attempt of a step's action, a child of its saga's span; ERROR when the
  attempt failed, was retried or timed out.
* ``compensate <step>``: one attempt of a compensation.
* ``sagactor recovery``: a recovery, with how many sagas it resumed and set aside.

Open spans are kept only for sagas in flight, so memory stays bounded by live work.
"""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager
from typing import Any

from .errors import DefinitionError
from .observe import Notice, RecoveryNotice, SagaNotice

try:
    from opentelemetry import trace
    from opentelemetry.trace import Span, Status, StatusCode, Tracer
except ImportError as error:  # pragma: no cover - exercised without the extra
    raise DefinitionError(
        "sagactor.otel",
        f"needs the OpenTelemetry API: pip install 'sagactor[otel]' ({error})",
        kind="setting",
    ) from error

__all__ = ["SpanListener"]

_ACTION_START = "StepStarted"
_ACTION_END = {"StepSucceeded": None, "StepFailed": "failed", "StepRetrying": "retrying"}
_ACTION_END |= {"StepTimedOut": "timed out"}
_COMPENSATION_START = "CompensationStarted"
_COMPENSATION_END = {"StepCompensated": None, "CompensationFailed": "failed"}
_SAGA_ERRORS = {"SagaCompensated", "SagaStuck"}


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class SpanListener:
    """Pass to ``Runtime(listeners=[...])`` or ``rt.listen(...)``; ``tracer_provider`` defaults
    to the global one."""

    def __init__(self, tracer_provider: Any | None = None) -> None:
        self._tracer: Tracer = trace.get_tracer("sagactor", tracer_provider=tracer_provider)
        self._lock = threading.Lock()  # the coordinator and the dispatcher call from two threads
        self._sagas: dict[str, Span] = {}
        self._attempts: dict[tuple[str, str, str], Span] = {}

    @property
    def open_spans(self) -> int:
        """Spans begun and not yet ended (sagas in flight and their running attempts)."""
        return len(self._sagas) + len(self._attempts)

    def __call__(self, notice: Notice) -> None:
        if isinstance(notice, RecoveryNotice):
            self._recovery(notice)
            return
        with self._lock:
            self._saga_event(notice)

    def handler_scope(self, saga_id: str, step: str, kind: str) -> AbstractContextManager[Any]:
        """The step attempt's span as the current span while its handler runs, so the
        handler's own spans nest under it (sync handlers; the runtime calls this)."""
        span = self._attempts.get((saga_id, step, kind))
        if span is None:
            return contextlib.nullcontext()
        return trace.use_span(span, end_on_exit=False)

    def _saga_event(self, notice: SagaNotice) -> None:
        saga = self._saga_span(notice)
        kind = notice.type
        if kind in (_ACTION_START, _COMPENSATION_START) and notice.step is not None:
            action = kind == _ACTION_START
            key = (notice.saga_id, notice.step, "action" if action else "compensation")
            self._end_attempt(key, notice, "superseded")  # a re-sent attempt replaces it
            self._attempts[key] = self._tracer.start_span(
                f"{'step' if action else 'compensate'} {notice.step}",
                context=trace.set_span_in_context(saga),
                start_time=_ns(notice.ts),
                attributes={
                    "sagactor.saga_id": notice.saga_id,
                    "sagactor.step": notice.step,
                    "sagactor.attempt": notice.attempt or 0,
                },
            )
        elif kind in _ACTION_END and notice.step is not None:
            self._end_attempt((notice.saga_id, notice.step, "action"), notice, _ACTION_END[kind])
        elif kind in _COMPENSATION_END and notice.step is not None:
            key = (notice.saga_id, notice.step, "compensation")
            self._end_attempt(key, notice, _COMPENSATION_END[kind])
        if notice.final:
            for key in [k for k in self._attempts if k[0] == notice.saga_id]:
                self._end_attempt(key, notice, "saga ended")
            span = self._sagas.pop(notice.saga_id)
            span.set_attribute("sagactor.status", notice.status.value)
            reason = getattr(notice.event, "reason", "")
            if kind in _SAGA_ERRORS:
                span.set_status(Status(StatusCode.ERROR, f"{notice.status.value}: {reason}"))
            span.end(end_time=_ns(notice.ts))

    def _saga_span(self, notice: SagaNotice) -> Span:
        span = self._sagas.get(notice.saga_id)
        if span is None:
            attributes: dict[str, Any] = {"sagactor.saga_id": notice.saga_id}
            attributes["sagactor.saga"] = notice.saga
            if notice.type == "SagaStarted":
                attributes["sagactor.mode"] = str(getattr(notice.event, "mode", ""))
            elif notice.type == "SagaResumed":
                attributes["sagactor.resumed"] = True  # an operator resumed it after it was stuck
            else:
                attributes["sagactor.recovered"] = True  # it started before a recovery
            span = self._tracer.start_span(
                f"saga {notice.saga}", start_time=_ns(notice.ts), attributes=attributes
            )
            self._sagas[notice.saga_id] = span
        return span

    def _end_attempt(
        self, key: tuple[str, str, str], notice: SagaNotice, error: str | None
    ) -> None:
        span = self._attempts.pop(key, None)
        if span is None:
            return
        if error is not None:
            detail = getattr(notice.event, "reason", "") or getattr(notice.event, "error", "")
            span.set_status(Status(StatusCode.ERROR, f"{error}: {detail}" if detail else error))
        span.end(end_time=_ns(notice.ts))

    def _recovery(self, notice: RecoveryNotice) -> None:
        span = self._tracer.start_span(
            "sagactor recovery",
            start_time=_ns(notice.started),
            attributes={
                "sagactor.resumed": len(notice.resumed),
                "sagactor.quarantined": len(notice.quarantined),
            },
        )
        span.end(end_time=_ns(notice.ended))
