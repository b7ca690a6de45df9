r"""Names the controller and the clients agree on: message kinds, states, data kinds, task
names, meta keys, tensor prefixes.

Both sides import them from here, so client code (trainers, the torch helpers, the
client's statistics) never imports a controller-side workflow module to learn a string,
and a name changes in one place. The closed sets are :class:`StrEnum`\ s: a member is its
string wherever a string goes (``==``, JSON, f-strings), so the wire and the panel see
plain strings, while the code names each value once and a type checker sees which
set a value comes from.
"""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """A ``str`` enum whose members print, format and show (in a list, a log line) as their
    plain strings on every Python nbfl supports (``enum.StrEnum`` is 3.11's)."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return str.__repr__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(self, spec)


class MessageKind(StrEnum):
    """The kinds of message on the wire (:mod:`nbfl.protocol.wire` accepts these only)."""

    JOIN = "join"  # client -> controller: name, host, device, samples, capabilities
    WELCOME = "welcome"  # controller -> client: accepted, client id
    TASK = "task"  # controller -> client: task name, task id, round, weights
    INFO = "info"  # client -> controller: what it trains on, once its share came (samples, device, labels)
    ABORTED = "aborted"  # client -> controller: it stopped a task on the controller's abort (task id)
    READY = "ready"  # client -> controller: a result is ready, waiting for a pull
    PULL = "pull"  # controller -> client: send the ready result now (flow control)
    RESULT = "result"  # client -> controller: task id, weights or diff, metrics
    HEARTBEAT = "heartbeat"  # both ways, answered by the IO thread, never by user code
    ABORT = "abort"  # controller -> client: abort the running task
    ERROR = "error"  # either way: a task failed or a message was refused
    BYE = "bye"  # either way: leaving


class IoEvent(StrEnum):
    """What an IO thread tells its side (:mod:`nbfl.transport.threads`), besides messages."""

    MESSAGE = "message"  # a valid message arrived
    HEARTBEAT = "heartbeat"  # a peer is alive
    INVALID = "invalid"  # a message was refused (malformed, over budget)
    LOST = "lost"  # no heartbeat for too long, or the connection dropped
    BACK = "back"  # (client) the controller answers again
    REFUSED = "refused"  # (client) the connection or its handshake was refused
    DIED = "died"  # nbfl's own bug ended the IO thread


class ClientState(StrEnum):
    """A client as the controller's registry and the panel show it."""

    JOINING = "joining"  # welcomed; building its data from the share it was given
    IDLE = "idle"
    TRAINING = "training"
    LOST = "lost"  # no heartbeat: it may come back
    LEFT = "left"  # said bye
    REMOVED = "removed"  # removed by whoever runs the controller; kept out


class ParticipantState(StrEnum):
    """A participant as it sees itself (its status line and its own panel)."""

    CONNECTING = "connecting"
    IDLE = "idle"
    TRAINING = "training"
    STOPPED = "stopped"


class RunState(StrEnum):
    """A run as the panel shows it."""

    RUNNING = "running"
    FINISHED = "finished"
    STOPPED = "stopped"
    FAILED = "failed"


# tasks a workflow sends and the built-in trainer answers
TRAIN = "train"
VALIDATE = "validate"
SUBMIT_MODEL = "submit_model"
STATISTICS = "statistics"

# keys of a task's (and a result's) meta
FILTERS = "filters"  # task: the filter specs the run asks for; result: the filters the update went through
STATS_PASS = "pass"  # federated statistics: 1 (count, sum, min, max) or 2 (deviations, histograms)
MIN_COUNT = "min_count"  # federated statistics: fewer samples than this and a site withholds its numbers
WITHHELD = "withheld"  # federated statistics: why a site sent no numbers

# the tensors a site's first statistics pass answers with, one value per feature
FIRST_PASS = ("count", "sum", "min", "max")


class DataKind(StrEnum):
    """The kinds of data a task or a result carries (the seed-style API's names)."""

    WEIGHTS = "WEIGHTS"
    WEIGHT_DIFF = "WEIGHT_DIFF"
    METRICS = "METRICS"
    COLLECTION = "COLLECTION"
    STATISTICS = "STATISTICS"
    ENCRYPTED = "ENCRYPTED"  # nbfl's: ciphertexts of full weights (nbfl.protocol.he)


class MetaKey:
    """Keys of a task's or a result's meta (the seed-style API's names)."""

    NUM_STEPS_CURRENT_ROUND = "NUM_STEPS_CURRENT_ROUND"
    INITIAL_METRICS = "initial_metrics"
    CURRENT_ROUND = "current_round"
