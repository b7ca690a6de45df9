"""The shapes the Federation panel reads, from a controller or a participant.

A controller's and a participant's control sockets answer ``status`` with these
(JSON values); nbfl's Jupyter server extension relays them unchanged to the panel,
whose TypeScript declares them again in ``extensions/federation/src/api.ts``.
``tests/unit/test_panel_types.py`` reads that file and holds the two declarations
together: the same interfaces, fields, optional fields and types, and the same values
for the states.
"""

from __future__ import annotations

from typing import TypedDict

from .names import ClientState, ParticipantState, RunState

Metrics = dict[str, float]  # api.ts: Metrics


class _Run(TypedDict):
    state: RunState
    summary: str
    round: int | None  # the run's round in progress (or its last one), counted within this run
    rounds: int | None
    answered: int  # results in, in the round in progress
    asked: int  # tasks out
    workflow: str


class Run(_Run, total=False):
    overall: int | None  # the same round numbered across all of the controller's runs
    view: str | None  # while it runs: how to get its dashboard back after a page reload
    held: bool  # whether a notebook cell waits on it (a blocking %fl_round)


class Client(TypedDict):
    name: str
    device: str
    host: str
    state: ClientState
    share: str | None
    round: int | None
    seconds: float | None
    metrics: Metrics


class HistoryRow(TypedDict):
    round: int  # controller-wide
    status: str
    outcome: str
    metrics: Metrics


class Defense(TypedDict):
    refused_messages: int
    refused_joins: int
    dropped_peers: int
    closed_connections: int  # connections closed before they joined (over the cap, or too slow)
    ended_unjoined: int  # connections that ended before joining
    top: list[tuple[str, int]]  # [address, refusals], most first
    summary: str


class _ControllerStatus(TypedDict):
    endpoint: str
    security: str
    workshop: bool
    join_line: str | None
    run: Run | None
    clients: list[Client]
    history: list[HistoryRow]  # at most the last 500 rounds


class ControllerStatus(_ControllerStatus, total=False):
    defense: Defense


# "global" is a Python keyword: only TypedDict's functional form can name that key
_ParticipantStatus = TypedDict(
    "_ParticipantStatus",
    {
        "name": str,
        "controller": str,
        "state": ParticipantState,
        "controller_lost": float | None,  # seconds since the controller stopped answering
        "share": str | None,
        "device": str,
        "rounds_done": int,
        "local": Metrics,
        "global": Metrics,
        "last_error": str | None,
    },
)


class ParticipantStatus(_ParticipantStatus, total=False):
    global_round: int | None  # the round whose global metrics these are
