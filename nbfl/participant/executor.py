"""The seed-style Executor API, so a trainer written for it runs with only its imports changed.

A trainer written as::

    from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
    from nvflare.apis.executor import Executor
    ...

runs under nbfl after those lines become ``from nbfl.participant.executor import DXO, DataKind, ...``.
Everything here is plain Python and numpy; nothing in it touches the network.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

from ..protocol.names import DataKind, MetaKey

__all__ = [  # the seed-style API; DataKind and MetaKey are the protocol's names, offered here too
    "AppConstants",
    "DXO",
    "DataKind",
    "Executor",
    "FLContext",
    "MetaKey",
    "ReservedHeaderKey",
    "ReturnCode",
    "Shareable",
    "Signal",
    "from_shareable",
    "make_reply",
]


class ReturnCode:
    OK = "OK"
    EXECUTION_EXCEPTION = "EXECUTION_EXCEPTION"
    TASK_UNKNOWN = "TASK_UNKNOWN"
    TASK_ABORTED = "TASK_ABORTED"
    BAD_TASK_DATA = "BAD_TASK_DATA"
    ERROR = "ERROR"


class ReservedHeaderKey:
    RC = "__rc__"
    TASK_NAME = "__task_name__"
    CURRENT_ROUND = "current_round"


class AppConstants:
    TASK_TRAIN = "train"
    TASK_VALIDATION = "validate"
    TASK_SUBMIT_MODEL = "submit_model"
    CURRENT_ROUND = "current_round"
    NUM_ROUNDS = "num_rounds"


class Shareable(dict):
    """What travels between controller and executor: a dict plus a header."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.headers: dict[str, Any] = {}

    def set_header(self, key: str, value: Any) -> None:
        self.headers[key] = value

    def get_header(self, key: str, default: Any = None) -> Any:
        return self.headers.get(key, default)

    def set_return_code(self, rc: str) -> None:
        self.set_header(ReservedHeaderKey.RC, rc)

    def get_return_code(self, default: str = ReturnCode.OK) -> str:
        return self.get_header(ReservedHeaderKey.RC, default)


def make_reply(rc: str, headers: dict[str, Any] | None = None) -> Shareable:
    """An empty Shareable carrying only a return code, as seed trainers return on failure."""
    reply = Shareable()
    reply.set_return_code(rc)
    for key, value in (headers or {}).items():
        reply.set_header(key, value)
    return reply


class DXO:
    """Data exchange object: a kind (WEIGHTS, WEIGHT_DIFF, METRICS), a dict of data, meta."""

    _KEY = "DXO"

    def __init__(self, data_kind: str, data: dict[str, Any], meta: dict[str, Any] | None = None):
        self.data_kind = data_kind
        self.data = data
        self.meta = dict(meta or {})

    def set_meta_prop(self, key: str, value: Any) -> None:
        self.meta[key] = value

    def get_meta_prop(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)

    def to_shareable(self) -> Shareable:
        shareable = Shareable()
        shareable[self._KEY] = {"kind": self.data_kind, "data": self.data, "meta": self.meta}
        return shareable

    def __repr__(self) -> str:
        return f"DXO({self.data_kind}, {len(self.data)} items, meta={self.meta})"


def from_shareable(shareable: Shareable) -> DXO:
    """The DXO inside ``shareable``; ValueError if it holds none."""
    content = shareable.get(DXO._KEY) if isinstance(shareable, dict) else None
    if not isinstance(content, dict) or "kind" not in content:
        raise ValueError("the shareable holds no DXO")
    return DXO(content["kind"], content.get("data", {}), content.get("meta", {}))


class Signal:
    """An abort flag that the controller can raise while a task runs."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def trigger(self, value: Any = True) -> None:
        self.value = value
        self._event.set()

    @property
    def triggered(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early if triggered; returns ``triggered``."""
        return self._event.wait(timeout)

    def reset(self) -> None:
        self._event.clear()


class FLContext:
    """Per-task context: props the runtime sets (round, client name) and the task's own."""

    def __init__(self, identity_name: str = "", props: dict[str, Any] | None = None):
        self._identity = identity_name
        self._props: dict[str, Any] = dict(props or {})

    def get_identity_name(self) -> str:
        return self._identity

    def get_prop(self, key: str, default: Any = None) -> Any:
        return self._props.get(key, default)

    def set_prop(self, key: str, value: Any, private: bool = True, sticky: bool = True) -> None:
        self._props[key] = value


class Executor:
    """Base class of seed-style trainers: override :meth:`execute`."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(type(self).__name__)

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        raise NotImplementedError

    def _prefix(self, fl_ctx: FLContext | None) -> str:
        name = fl_ctx.get_identity_name() if fl_ctx is not None else ""
        return f"[{name}] " if name else ""

    def log_debug(self, fl_ctx: FLContext, msg: str) -> None:
        self.logger.debug(self._prefix(fl_ctx) + msg)

    def log_info(self, fl_ctx: FLContext, msg: str) -> None:
        self.logger.info(self._prefix(fl_ctx) + msg)

    def log_warning(self, fl_ctx: FLContext, msg: str) -> None:
        self.logger.warning(self._prefix(fl_ctx) + msg)

    def log_error(self, fl_ctx: FLContext, msg: str) -> None:
        self.logger.error(self._prefix(fl_ctx) + msg)

    def log_exception(self, fl_ctx: FLContext, msg: str) -> None:
        self.logger.error(self._prefix(fl_ctx) + msg + "\n" + traceback.format_exc())
