"""What the controller records: its clients, their results, and one record per round.

Plain dataclasses, shared by the controller, the workflows, the notebook layer and the
command line, so each of them reads the same typed fields instead of agreeing on the
keys of a dict.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .names import ClientState, StrEnum

MAX_METRICS = 32  # metrics kept of one result: enough for any table, too few to bloat the history
MAX_METRIC_NAME = 64  # characters of a metric's name


@dataclass
class ClientInfo:
    """What the controller knows of one client; shown in ``%fl_clients`` and dashboards."""

    name: str
    host: str
    device: str
    samples: int
    peer: bytes = field(repr=False)
    accepts_code: bool = False
    share: str = ""  # the part of a built-in dataset the controller assigned ("3/30"), if any
    code: str = ""  # what it ran last: "%%fl_task" (the controller's code) or "own"
    labels: list[int] = field(default_factory=list)  # samples per class, if the client reported them
    codecs: list[str] = field(
        default_factory=list
    )  # the compressions it decodes (nbfl.protocol.compress); none: an older client
    traffic: tuple[int, int] | None = None  # bytes sent to it and received from it in its last round
    aborted_at: float | None = None  # time.monotonic() when it last said it stopped a task on an abort
    state: ClientState = ClientState.IDLE
    last_seen: float = field(default_factory=time.time)
    last_round: int | None = None
    last_seconds: float | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    last_error: str = ""  # why its last task failed, in its own words; cleared by a result

    @property
    def live(self) -> bool:
        """Connected and answering (not lost, not left)."""
        return self.state in (ClientState.IDLE, ClientState.TRAINING)


@dataclass
class Result:
    """One client's answer to one task, as handed to a workflow."""

    client: str
    kind: str
    weights: dict[str, np.ndarray]
    meta: dict[str, Any]
    seconds: float

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics the client reported, as far as they are numbers fit to record (:func:`finite_metrics`)."""
        return finite_metrics(self.meta.get("metrics"))


def finite_metrics(raw: Any) -> dict[str, float]:
    """The first :data:`MAX_METRICS` entries of ``raw`` named by 1 to :data:`MAX_METRIC_NAME`
    printable characters whose value is a finite real number (not a bool), as floats.

    Metrics come from peers and end up in records, tables, checkpoints and the next
    task's header (whose JSON refuses NaN); anything else is dropped here, once.
    """
    if not isinstance(raw, Mapping):
        return {}
    kept: dict[str, float] = {}
    for key, value in raw.items():
        if len(kept) == MAX_METRICS:
            break
        if not (isinstance(key, str) and 0 < len(key) <= MAX_METRIC_NAME and key.isprintable()):
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            continue
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the float range
            continue
        if math.isfinite(number):
            kept[key] = number
    return kept


class RoundStatus(StrEnum):
    """How a round ended. A ``str`` enum: ``record.status == "ok"`` reads as it says."""

    OK = "ok"  # the workflow's new model is the global model
    FAILED = "failed"  # too few usable results, or the workflow refused; the model is unchanged
    STOPPED = "stopped"  # Run.stop() (a Stop button, %fl_stop); clients told to abort
    INTERRUPTED = "interrupted"  # the kernel's interrupt (Ctrl-C); clients told to abort


@dataclass
class RoundRecord:
    """One round: how it ended, the global model's metrics and each client's part in it.

    ``clients`` maps each client whose result was used to its seconds and metrics;
    ``failed`` maps the others to why (with a remote traceback where there was one).
    ``notes`` holds what a workflow reports beyond the model (``cross_site``,
    ``statistics``, ``order``).
    """

    round: int
    workflow: str
    status: RoundStatus = RoundStatus.OK
    reason: str = ""  # why it failed or stopped, for people
    metrics: dict[str, float] = field(default_factory=dict)  # the global model's evaluation after the round
    clients: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    filters: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # what each site's update went through
    privacy: dict[str, Any] | None = None  # epsilon spent so far through DP filters (nbfl.filters.accountant)
    traffic: tuple[int, int] = (0, 0)  # bytes sent to all clients, and received from them (each client's: ClientInfo)
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    sampled: list[str] = field(default_factory=list)  # the clients a sampled round picked (empty: it asked all)
    sample_seed: int | None = None  # the run's sampling seed: with the round number it picks the same clients again

    @property
    def ok(self) -> bool:
        return self.status is RoundStatus.OK

    @property
    def outcome(self) -> str:
        """The status as people read it: ``ok``, or ``ok, 1 of 4 failed`` when some clients failed."""
        if not self.failed:
            return str(self.status)
        return f"{self.status}, {len(self.failed)} of {len(self.failed) + len(self.clients)} failed"
