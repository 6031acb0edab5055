"""Decision logs: one JSON line per decision, masked by bundle rules, written off the request path.

`recorder` is what the edges call; `writer` queues and drains; `entry` builds the lines;
`masking` applies the bundle's rules; `sink` owns the descriptor.
"""

from __future__ import annotations

from pdp.decisionlog.entry import (
    ACCESS_EVALUATION,
    ACCESS_EVALUATIONS,
    BATCH_IS_AUTHORIZED,
    CHECK,
    FORWARD_AUTH,
    IS_AUTHORIZED,
    MAX_LINE_BYTES,
    PLAN_RESOURCES,
    GatewayFields,
    PlanFields,
    Record,
)
from pdp.decisionlog.masking import MASKED, Masker
from pdp.decisionlog.recorder import LazyRequests, Recorder
from pdp.decisionlog.sink import Sink, open_sink
from pdp.decisionlog.writer import DEFAULT_CAPACITY, DecisionLog, Sampling

__all__ = [
    "ACCESS_EVALUATION",
    "ACCESS_EVALUATIONS",
    "BATCH_IS_AUTHORIZED",
    "CHECK",
    "DEFAULT_CAPACITY",
    "FORWARD_AUTH",
    "IS_AUTHORIZED",
    "MASKED",
    "MAX_LINE_BYTES",
    "PLAN_RESOURCES",
    "DecisionLog",
    "GatewayFields",
    "LazyRequests",
    "Masker",
    "PlanFields",
    "Record",
    "Recorder",
    "Sampling",
    "Sink",
    "open_sink",
]
