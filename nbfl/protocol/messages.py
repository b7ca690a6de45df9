"""The header fields of each kind of message, besides its kind and its tensors.

What an honest sender puts there; a receiver still checks every field it reads (it came
over the network). The senders that build a header as a dict annotate it with its
kind's TypedDict, so mypy checks the keys and their types; ``tests/unit/test_messages.py``
checks the keyword arguments of every ``wire.message(MessageKind.X, ...)`` in nbfl
against :data:`FIELDS`, and that every kind has its entry.
"""

from __future__ import annotations

from typing import Any, TypedDict

from .names import MessageKind


class Join(TypedDict, total=False):
    name: str  # how the controller lists this client (with a kit: compared with the kit's name)
    host: str
    device: str
    samples: int
    pid: int
    accepts_code: bool  # whether it runs %%fl_task code the controller sends
    labels: list[int]  # samples per class
    codecs: list[str]  # the codecs it decodes
    token: str  # a workshop's join token (inside CurveZMQ)
    wants_share: bool  # a workshop participant that trains on the share the welcome assigns
    share: str  # the share it was given on its command line


class Welcome(TypedDict, total=False):
    name: str
    compress: str  # the controller's codec, so a client that cannot decode it says so now
    share: dict[str, Any]  # a workshop's share for this participant (Share.fields())


class Task(TypedDict, total=False):
    task_id: str
    task_name: str
    round: int
    kind: str  # a DataKind
    direct: bool  # send the result when done; else announce it (ready) and wait for a pull
    meta: dict[str, Any]
    global_metrics: dict[str, Any] | None  # the last round's, for the participant's status
    code: str  # %%fl_task source, to a client that accepts code
    compress: dict[str, Any]  # how the tensors are packed (nbfl.protocol.compress)
    compress_results: str  # the codec the result should travel in


class Info(TypedDict, total=False):
    samples: int
    device: str
    labels: list[int]


class TaskRef(TypedDict):
    task_id: str


class Result(TypedDict, total=False):
    task_id: str
    kind: str  # a DataKind
    meta: dict[str, Any]
    compress: dict[str, Any]


class Error(TypedDict, total=False):
    reason: str
    task_id: str  # a failed task's
    traceback: str  # the site's, for the controller's cell
    rejoin: bool  # the peer is not joined (a restarted controller): join again
    retry: bool  # a refused join that may pass later (busy, a name still taken)


class Bye(TypedDict, total=False):
    reason: str


class Empty(TypedDict):
    pass


FIELDS: dict[MessageKind, type] = {
    MessageKind.JOIN: Join,
    MessageKind.WELCOME: Welcome,
    MessageKind.TASK: Task,
    MessageKind.INFO: Info,
    MessageKind.ABORTED: TaskRef,
    MessageKind.READY: TaskRef,
    MessageKind.PULL: TaskRef,
    MessageKind.RESULT: Result,
    MessageKind.HEARTBEAT: Empty,
    MessageKind.ABORT: TaskRef,
    MessageKind.ERROR: Error,
    MessageKind.BYE: Bye,
}
