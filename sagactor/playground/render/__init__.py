"""Text renderers of the playground: tables, timelines, workflow graphs, stats, values.

Every function here is pure: it takes data (history entries, summaries, definitions) and
returns text, so each can be tested without a runtime. Output is plain ASCII.
"""

from .basics import (
    clock,
    compact,
    duration,
    percentile,
    pretty,
    progress_bar,
    table,
    table_text,
)
from .graphs import Reaction, event_order, graph, native_graph, owner, subscriptions, undo_target
from .reports import (
    STATUS_ORDER,
    Batch,
    faults_table,
    inspect_report,
    records_table,
    sagas_table,
    stats,
    status_counts,
)
from .timelines import DISPATCHER, choreography_row, describe, native_row, timeline

__all__ = [
    "DISPATCHER",
    "STATUS_ORDER",
    "Batch",
    "Reaction",
    "choreography_row",
    "clock",
    "compact",
    "describe",
    "duration",
    "event_order",
    "faults_table",
    "graph",
    "inspect_report",
    "native_graph",
    "native_row",
    "owner",
    "percentile",
    "pretty",
    "progress_bar",
    "records_table",
    "sagas_table",
    "stats",
    "status_counts",
    "subscriptions",
    "table",
    "table_text",
    "timeline",
    "undo_target",
]
