"""What ``nbfl client`` prints in a terminal: a line for each change a participant cares
about, since a terminal has no status line to update in place.

The share the controller assigned (and how many samples of which digits it holds), one
line per round trained, an error when a task fails, the controller going quiet and
coming back, and at the end why the client stopped (left, removed, the controller
stopped). Lines come from the client's ``on_update`` callback, which several of its
threads call; a lock keeps them whole and in order.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from ..protocol.names import ParticipantState


class ParticipantLines:
    """``on_update`` for a :class:`nbfl.Client`: prints what changed since the last call."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self._lock = threading.Lock()
        self._held: list[str] | None = []  # lines before the "joined" line, printed after it
        self._share: str | None = None
        self._rounds = 0
        self._error: str | None = None
        self._lost = False

    def __call__(self, client: Any) -> None:
        with self._lock:
            lines = [f"{client.name}: {line}" for line in self._changes(client)]
            if self._held is not None:
                self._held += lines
            else:
                self._write(lines)

    def joined(self, line: str) -> None:
        """The "joined" line, then what came before it (a share assigned with the welcome)."""
        with self._lock:
            held, self._held = self._held or [], None
            self._write([line, *held])

    def _write(self, lines: list[str]) -> None:
        if lines:  # one write: lines from two threads never run into each other
            self.out.write("".join(f"{line}\n" for line in lines))
            self.out.flush()

    def _changes(self, client: Any) -> list[str]:
        lines = []
        if client.share is not None and str(client.share) != self._share:
            self._share = str(client.share)
            lines.append(f"share {client.share}: {client.samples} samples{_labels(client.labels)}")
        if client.rounds_done > self._rounds:
            self._rounds = client.rounds_done
            lines.append(_round_line(client))
        if client.last_error and client.last_error != self._error and client.state != ParticipantState.STOPPED:
            lines.append(f"error: {client.last_error}")
        self._error = client.last_error
        lost = client.controller_lost is not None
        if lost != self._lost:
            self._lost = lost
            lines.append("the controller does not answer; still trying" if lost else "the controller answers again")
        return lines

    def exit_line(self, client: Any) -> str:
        """The last line: why the client stopped, and what it did."""
        done = f"{client.rounds_done} round{'s' if client.rounds_done != 1 else ''} trained"
        return f"{client.name}: stopped ({client.ended or 'left'}); {done}"


def _labels(labels: list[int]) -> str:
    """``, mostly 3, 7 and 1`` for the digits it holds most of, if the trainer reported them."""
    if not labels or not sum(labels):
        return ""
    top = sorted(range(len(labels)), key=lambda d: -labels[d])[:3]
    return ", mostly " + ", ".join(str(d) for d in top[:-1]) + f" and {top[-1]}"


def _round_line(client: Any) -> str:
    metrics = client.last_metrics
    local = metrics.get("local_accuracy", metrics.get("accuracy"))
    parts = [f"round {client.last_round} done" if client.last_round is not None else "task done"]
    if local is not None:
        parts.append(f"local accuracy {local:.3f}")
    if "train_loss" in metrics:
        parts.append(f"loss {metrics['train_loss']:.3f}")
    global_accuracy = client.global_metrics.get("accuracy")
    if global_accuracy is not None and client.global_round is not None:
        parts.append(f"global accuracy {global_accuracy:.3f} after round {client.global_round}")
    return ", ".join(parts)
