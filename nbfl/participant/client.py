"""The client: join a controller, run tasks on local data, send back only weights.

Threads: the IO thread owns the DEALER socket, beats and reacts to the controller
(tasks are queued, pulls answered, aborts flagged, so an ABORT is seen while a task
trains); a worker runs the Executor. With :meth:`Client.start` both run in the
background and the kernel stays usable; :meth:`Client.run` blocks, for headless processes.

Results leave at once only when the task said so (the controller reserved room for
them); otherwise the worker announces ``ready`` and waits for the controller's ``pull``.
That keeps the controller's memory flat however many clients there are.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import random
import socket
import threading
import time
import traceback
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import filters
from ..filters import Filter
from ..protocol import compress, messages, names, wire
from ..protocol.joining import JoinCode, Share, is_join_code
from ..protocol.names import DataKind, IoEvent, MessageKind, ParticipantState
from ..protocol.panel import ParticipantStatus
from ..transport.control import ControlServer
from ..transport.provision import Kit, as_kit
from ..transport.threads import HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, ClientIO, CurveConfig, Link, check_plaintext
from .executor import DXO, Executor, FLContext, ReturnCode, Signal, from_shareable
from .setup import LocalSetup, participant_keys
from .tasks import FunctionExecutor, TaskFunction, registry, tasks_from_source

JOIN_RESEND = 5.0  # seconds without an answer before a join is sent again

log = logging.getLogger(__name__)


class Client:
    """A participant. Give it an :class:`~nbfl.participant.executor.Executor` or task functions.

    ``tasks`` defaults to the functions registered with ``@nbfl.task``; they see
    ``data`` as ``ctx.data``. ``samples`` and ``device`` are shown in the controller's
    client table. With ``accept_code=True`` the client runs task code the controller
    sends (``%%fl_task``) instead of its own; without it, such code is never sent.
    ``filters`` are this site's privacy policy (:mod:`nbfl.filters`): they run on every
    update it sends, after any the controller asked for, and the controller cannot
    turn them off; ``task_filters`` run on what each task brings (e.g. HE decryption).
    ``on_update(client)`` is called (from a worker thread) when state or metrics change.

    With ``kit`` (a client's startup kit from ``nbfl provision``, or its folder) the
    connection is CurveZMQ with the kit's keys, and ``endpoint`` and ``name`` default to
    the kit's; the controller lists the client under the kit's name whatever ``name``
    says. ``endpoint`` may instead be a workshop's join code (``nbfl://HOST:PORT/KEY/TOKEN``,
    :mod:`nbfl.controller.workshop`): the client makes its own key pair, knows the controller by
    the code's key and joins with its token. Otherwise only a loopback controller is
    allowed unless ``insecure=True``.

    With ``from_share(share) -> LocalSetup`` the client asks the controller (a
    workshop's) for its share of a built-in dataset and builds its executor and data
    from the answer; ``executor``, ``data``, ``samples`` and ``device`` come from it.
    ``share`` names the part it was given otherwise (``nbfl client --index``), for the
    controller's table.

    With ``control=True`` (``%fl_join`` sets it) the client serves a local control socket
    while it runs (:mod:`nbfl.transport.control`), so JupyterLab's Federation panel shows it and its
    Leave button works while the participant's kernel is busy.

    ``runner`` is the :class:`Runner` whose thread runs this client's tasks; by default the
    client has one of its own. The logical clients of a :class:`~nbfl.participant.host.Host`
    share one, so they train one after another. ``link(handler)`` gives the client its way
    to the controller through its host's shared connection
    (:meth:`~nbfl.transport.threads.SharedConnection.link`); by default it has a connection
    of its own.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        name: str | None = None,
        executor: Executor | None = None,
        *,
        kit: Kit | str | os.PathLike[str] | None = None,
        insecure: bool = False,
        tasks: Mapping[str, TaskFunction] | None = None,
        data: Any = None,
        samples: int = 0,
        device: str = "cpu",
        accept_code: bool = False,
        labels: Sequence[int] = (),
        from_share: Callable[[Share], LocalSetup] | None = None,
        share: Share | None = None,
        filters: Sequence[Filter] = (),
        task_filters: Sequence[Filter] = (),
        on_update: Callable[["Client"], None] | None = None,
        control: bool = False,
        runner: "Runner | None" = None,
        link: Callable[[Callable[[str, bytes, Any], None]], Link] | None = None,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
    ):
        self.kit = as_kit(kit, "client") if kit is not None else None
        self.join_code = JoinCode.parse(endpoint) if is_join_code(endpoint) else None
        if self.join_code is not None:
            if self.kit is not None:
                raise ValueError("join with a startup kit or a join code, not both")
            if name is None:
                raise TypeError("joining with a join line needs a name")
            public, secret = participant_keys(self.join_code.server_key, name)  # its own: nothing to hand out
            self._curve: CurveConfig | None = CurveConfig(public, secret, self.join_code.server_key, source="join line")
            endpoint = self.join_code.endpoint
        else:
            self._curve = self.kit.curve() if self.kit is not None else None
        endpoint = endpoint or (self.kit.endpoint if self.kit is not None else None)
        name = name or (self.kit.name if self.kit is not None else None)
        if endpoint is None or name is None:
            raise TypeError("Client needs an endpoint and a name, or a kit that has them")
        if self._curve is None:
            check_plaintext(endpoint, insecure, connect=True)  # a clear error now, not at start()
        self.insecure = insecure
        self.endpoint = endpoint
        self.name = name
        self.data = data
        self.executor = executor or FunctionExecutor(tasks if tasks is not None else registry, data, device)
        self.samples = samples
        self.device = device
        self.labels = list(labels)
        self.from_share = from_share
        self.share = share  # with from_share, the controller's answer
        self.accept_code = accept_code
        self.filters = list(filters)  # this site's policy: after the controller's, on every update
        self.task_filters = list(task_filters)  # on what a task brings, before the executor sees it
        self.on_update = on_update
        self.state = ParticipantState.CONNECTING  # connecting, idle, training, stopped
        self.rounds_done = 0
        self.last_round: int | None = None  # the round number of the last task it completed, as the controller counts
        self.ended: str | None = (
            None  # why it stopped: "left", the controller's reason (removed), "the controller stopped"
        )
        self.last_metrics: dict[str, float] = {}
        self.global_metrics: dict[str, float] = {}  # the global model's, as the controller last sent them
        self.global_round: int | None = None  # the round those are of (the one before the task that brought them)
        self.last_error: str | None = None
        self.controller_lost: float | None = None  # since when the controller has not answered (time.time())
        self._hb = (heartbeat_interval, heartbeat_timeout)
        self._link = link
        self._io: ClientIO | Link | None = None
        self._welcomed = threading.Event()
        self._answered = threading.Event()  # welcome or refusal: start() need not wait longer
        self._closing = threading.Event()  # stop() has begun
        self._stopped = threading.Event()  # stop() has finished: threads joined, socket closed
        self._stop_lock = threading.Lock()
        self._runner = runner or Runner(f"nbfl-worker-{name}")
        self._own_runner = runner is None
        self._current: tuple[str, Signal] | None = None
        self._ready: dict[str, list] = {}  # task id -> encoded result, waiting for a pull
        self._lock = threading.Lock()
        self._busy_refusals = 0  # joins in a row refused for load: each waits longer before the next
        self._joins_sent = 0  # a join unanswered after JOIN_RESEND seconds is sent again, on a fresh connection
        self._joins_answered = 0  # the last join that got an answer (a welcome, a refusal, "busy")
        self._shipped: tuple[str, FunctionExecutor] | None = None
        self._control = (
            ControlServer("participant", self.panel_status, {"leave": self._panel_leave}) if control else None
        )

    # -- lifecycle --------------------------------------------------------------
    def panel_status(self) -> ParticipantStatus:
        """This participant as its own Federation panel shows it (JSON values): its controller,
        its state, and its model's metrics beside the global model's."""
        lost = self.controller_lost
        return {
            "name": self.name,
            "controller": self.controller_address,
            "state": self.state,
            "controller_lost": None if lost is None else round(time.time() - lost, 1),
            "share": str(self.share) if self.share is not None else None,
            "device": str(self.device),
            "rounds_done": self.rounds_done,
            "local": dict(self.last_metrics),
            "global": dict(self.global_metrics),
            "global_round": self.global_round,
            "last_error": self.last_error,
        }

    def _panel_leave(self, args: Mapping[str, Any]) -> str:
        if self.state == ParticipantState.STOPPED:
            raise RuntimeError(f"{self.name} has already left")
        # stop() closes the control socket too: it runs on a thread of its own, after this answer
        threading.Thread(target=self.stop, name="nbfl-leave", daemon=True).start()
        return f"{self.name} is leaving {self.controller_address}"

    @property
    def controller_address(self) -> str:
        """Where the controller is, without a join code's token: ``HOST:PORT``."""
        return self.endpoint.removeprefix("tcp://")

    def start(self, wait: float | None = 30.0) -> "Client":
        """Join in the background and return; with ``wait``, block until welcomed."""
        self._connect()
        if wait is not None and not (self._answered.wait(wait) and self._welcomed.is_set()):
            error, refused = self.last_error, self._answered.is_set()
            stopped = self._closing.is_set()
            self.stop()
            if refused and (
                error or not stopped
            ):  # an answer, not silence: say so without suggesting a longer wait helps
                raise ConnectionError(f"{self.name} could not join {self.endpoint}: {error}")
            if stopped:  # stop() from another thread (its parent went) while it waited
                raise ConnectionError(f"{self.name} stopped before {self.endpoint} welcomed it")
            if not error and self._io is not None and not self._io.connected:
                error = (
                    "no connection was made: a firewall on the controller's machine, or a network that keeps "
                    "machines apart (a guest Wi-Fi), may drop it"
                )
            raise ConnectionError(f"not welcomed by {self.endpoint} within {wait} s" + (f": {error}" if error else ""))
        return self

    def run(self) -> None:
        """Join and serve tasks until the controller says bye or :meth:`stop` is called."""
        self._connect()
        try:
            while not self._stopped.wait(0.5):  # short waits keep Ctrl-C responsive
                pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Leave: abort a running task, say bye, close the socket; returns when all is done."""
        with self._stop_lock:  # a second caller waits for the first to finish
            if self._stopped.is_set():
                return
            self._closing.set()
            self.ended = self.ended or "left"  # unless the controller said why first
            self._answered.set()  # a start() still waiting for the welcome gives up now
            with self._lock:
                if self._current is not None:
                    self._current[1].trigger()
            if self._io is not None:
                if self._welcomed.is_set():  # a refused client never joined: nothing to leave
                    self._io.send(wire.message(MessageKind.BYE))
                self._io.stop()
            if self._own_runner:
                self._runner.close()
            self.state = ParticipantState.STOPPED
            if self._control is not None:
                self._control.close()
            self._stopped.set()
        self._notify()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the client has stopped (e.g. the controller said bye)."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> "Client":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _connect(self) -> None:
        if self._control is not None:
            self._control.start()
        self._io = (
            self._link(self._on_io_event)
            if self._link is not None
            else ClientIO(
                self.endpoint,
                self._on_io_event,
                heartbeat_interval=self._hb[0],
                heartbeat_timeout=self._hb[1],
                curve=self._curve,
                insecure=self.insecure,
            )
        )
        self._io.start()
        if self._own_runner:
            self._runner.start()
        self._join()

    def _join(self) -> None:
        assert self._io is not None
        fields: messages.Join = {
            "name": self.name,
            "host": socket.gethostname(),
            "device": self.device,
            "samples": self.samples,
            "pid": os.getpid(),
            "accepts_code": self.accept_code,
            "labels": self.labels,
            "codecs": list(compress.CODECS),  # the controller compresses only what this client can decode
        }
        if self.join_code is not None:  # inside CurveZMQ to the key in the code: only that controller reads it
            fields["token"] = self.join_code.token
        if self.from_share is not None:  # a rejoin asks again: the controller is ready for it once it answers
            fields["wants_share"] = True
        elif self.share is not None:
            fields["share"] = str(self.share)
        self._io.send(wire.message(MessageKind.JOIN, **fields))
        self._joins_sent += 1
        timer = threading.Timer(JOIN_RESEND, self._join_unanswered, args=(self._joins_sent,))
        timer.daemon = True
        timer.start()

    def _join_unanswered(self, sent: int) -> None:
        """The join ``sent`` got no answer: a busy controller may have closed the connection it
        went on (ZeroMQ reconnects, but does not send it again), so send it again."""
        answered = self._joins_answered == sent or self._answered.is_set() or self._welcomed.is_set()
        if sent == self._joins_sent and not (answered or self._closing.is_set()):
            log.info("%s: no answer to the join from %s yet; sending it again", self.name, self.endpoint)
            self._join()

    def _join_later(self) -> None:
        """Ask again after a pause that doubles with each refusal for load (1 s up to 30 s,
        jittered, so a room refused together does not come back together)."""
        delay = min(30.0, 2.0**self._busy_refusals) * random.uniform(0.5, 1.0)
        self._busy_refusals += 1
        log.info("%s: the controller is busy; joining again in %.1f s", self.name, delay)
        timer = threading.Timer(delay, lambda: None if self._closing.is_set() else self._join())
        timer.daemon = True
        timer.start()

    # -- IO thread: reacts to the controller, quickly ---------------------------
    def _on_io_event(self, kind: str, peer: bytes, payload: Any) -> None:
        if kind == IoEvent.INVALID:
            log.warning("%s: refused a message from the controller: %s", self.name, payload)
        elif kind == IoEvent.LOST:
            self.controller_lost = time.time()
            log.warning("%s: no heartbeat from %s; still trying", self.name, self.endpoint)
            self._notify()
        elif kind == IoEvent.BACK:
            self.controller_lost = None
            self._notify()
        elif kind == IoEvent.DIED:  # a bug ended the IO thread: say so where the participant looks, and leave
            self.last_error = self.ended = f"connection thread died: {payload!r}"
            self._answered.set()
            threading.Thread(target=self.stop, name=f"nbfl-stop-{self.name}", daemon=True).start()
        elif kind == IoEvent.REFUSED:  # the handshake failed: start() reports it at once
            log.warning("%s: %s: %s", self.name, self.endpoint, payload)
            if not self._welcomed.is_set():
                self.last_error = str(payload)
                self._answered.set()
        elif self._on_message(payload):
            threading.Thread(target=self.stop, name=f"nbfl-stop-{self.name}", daemon=True).start()

    def _on_message(self, msg: wire.Message) -> bool:
        """Handle one controller message; True means the controller said bye."""
        assert self._io is not None
        if msg.kind == MessageKind.WELCOME:
            codec = msg.get("compress")
            if codec is not None and codec not in compress.CODECS:
                self.last_error = (
                    f"the controller compresses the model as {str(codec)[:40]!r}, which this nbfl cannot "
                    f"decode (it knows {', '.join(compress.CODECS)}): install a newer nbfl"
                )
                log.warning("%s: %s", self.name, self.last_error)
                self.ended = self.last_error
                self._io.send(wire.message(MessageKind.BYE, reason=self.last_error))
                self._answered.set()
                return True  # and leaves
            listed = msg.get("name")
            if isinstance(listed, str) and listed != self.name:  # a kit's key decides the name
                log.warning("%s: the controller lists this client as %r (its kit's name)", self.name, listed)
                self.name = listed
            if self.from_share is not None:
                # the worker builds the data before any task, which the queue keeps behind it
                self._runner.submit(self, Share.from_fields(msg.get("share")) or Share(0, 1))
            self.state = ParticipantState.IDLE
            self.last_error = None  # a rejoin after a controller restart: its "not joined" is over
            self._busy_refusals = 0
            self._welcomed.set()
            self._answered.set()
            self._notify()
            log.info("%s joined %s", self.name, self.endpoint)
        elif msg.kind == MessageKind.TASK:
            sent = msg.get("global_metrics")
            if isinstance(sent, dict) and isinstance(sent.get("round"), int):
                self.global_round, self.global_metrics = sent["round"], _metrics(sent.get("metrics"))
            self._runner.submit(self, msg)
        elif msg.kind == MessageKind.PULL:
            with self._lock:
                result = self._ready.pop(msg.get("task_id"), None)
            if result is not None:
                self._io.send_frames(result)
        elif msg.kind == MessageKind.ABORT:
            with self._lock:
                if self._current is not None and msg.get("task_id") in (None, self._current[0]):
                    self._current[1].trigger()
                self._ready.pop(msg.get("task_id"), None)
        elif msg.kind == MessageKind.ERROR:
            self._joins_answered = self._joins_sent
            self.last_error = str(msg.get("reason"))
            log.warning("%s: controller says: %s", self.name, self.last_error)
            if msg.get("retry") is True and not self._welcomed.is_set():  # refused for load: not an answer yet
                self._join_later()
                return False
            self._answered.set()
            if msg.get("rejoin") is True:  # the controller forgot it: a join again, refused for load or not
                self._welcomed.clear()
                self._join()
        elif msg.kind == MessageKind.BYE:
            reason = msg.get("reason")
            if isinstance(reason, str):
                self.last_error = reason
            self.ended = reason[:300] if isinstance(reason, str) and reason else "the controller stopped"
            log.info("%s: the controller said goodbye%s", self.name, f": {reason}" if reason else "")
            return True
        return False

    # -- the runner's thread: runs tasks ----------------------------------------
    def _handle(self, item: wire.Message | Share) -> None:
        """Set up a share or run a task (called by :class:`Runner`); nothing once stopping."""
        if self._closing.is_set():
            return
        if isinstance(item, Share):
            self._set_up(item)
            return
        frames = self._execute(item)
        if frames is not None and self._io is not None and not self._closing.is_set():
            self._io.send_frames(frames)

    def _execute(self, msg: wire.Message) -> list | None:
        """Run one task; return the frames to send: the result, ``ready`` (result kept for
        the pull) or ``error``. The result is encoded once, here."""
        task_id, task_name, number = msg.get("task_id"), str(msg.get("task_name")), msg.get("round", 0)
        signal = Signal()
        with self._lock:
            self._current = (task_id, signal)
        self.state = ParticipantState.TRAINING
        meta = msg.get("meta") if isinstance(msg.get("meta"), dict) else {}
        fl_ctx = FLContext(self.name, {"current_round": number, "task_name": task_name, "task_id": task_id})
        self._notify()
        try:
            requested = filters.build(meta.get(names.FILTERS))  # refuses unknown or bad ones, saying why
            tensors, kind = filters.apply(
                self.task_filters,
                compress.received(msg),
                str(msg.get("kind", DataKind.WEIGHTS)),
                filters.FilterContext(task_name, number, self.name, meta=dict(meta)),
            )
            shareable = DXO(kind, tensors, meta).to_shareable()
            reply = self._executor_for(msg).execute(task_name, shareable, fl_ctx, signal)
            if signal.triggered:  # acknowledged, so the controller knows the site stopped
                log.info("%s: task %s aborted", self.name, task_name)
                return wire.encode(wire.message(MessageKind.ABORTED, task_id=task_id))
            rc = reply.get_return_code() if hasattr(reply, "get_return_code") else ReturnCode.OK
            if rc != ReturnCode.OK:
                return wire.encode(
                    wire.message(
                        MessageKind.ERROR, task_id=task_id, reason=f"{self.name} returned {rc} for task {task_name!r}"
                    )
                )
            dxo = from_shareable(reply)
            data, kind, out_meta = _arrays(dxo.data), dxo.data_kind, dict(dxo.meta)
            if kind in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF) and (requested or self.filters):
                ctx = filters.FilterContext(task_name, number, self.name, reference=tensors, meta=out_meta)
                data, kind = filters.apply([*requested, *self.filters], data, kind, ctx)
            packed: dict[str, Any] = {}
            if msg.get("compress_results") in compress.CODECS:  # after every filter: what the site's policy let out
                data, packed["compress"] = compress.pack(data, msg.get("compress_results"))
            result = wire.message(
                MessageKind.RESULT, data, task_id=task_id, kind=kind, meta=_json_safe(out_meta), **packed
            )
            frames = wire.encode(result)  # fails here, with this client's traceback, if it cannot be sent
        except Exception as exc:
            tb = user_traceback(exc)
            log.error("%s: task %s failed:\n%s", self.name, task_name, tb)
            missing = _missing_module(exc)
            self.last_error = missing or f"{type(exc).__name__}: {exc}"
            self._notify()
            fields: messages.Error = (
                {"reason": missing} if missing else {"reason": self.last_error or "", "traceback": tb}
            )
            return wire.encode(wire.message(MessageKind.ERROR, task_id=task_id, **fields))
        finally:
            with self._lock:
                self._current = None
            self.state = ParticipantState.IDLE
        self.rounds_done += 1
        self.last_error = None  # a task done: an earlier task's failure is not the news any more
        self.last_round = number if isinstance(number, int) else None
        self.last_metrics = dict(result.fields["meta"].get("metrics") or {})
        self._notify()
        if msg.get("direct") is True:  # the controller reserved room for this result
            return frames
        with self._lock:
            self._ready[task_id] = frames
        return wire.encode(wire.message(MessageKind.READY, task_id=task_id))

    def _set_up(self, share: Share) -> None:
        """Build what this client trains with from the share the controller assigned, and
        tell it (the controller counts the client as ready from then on, even if this failed:
        its tasks then fail with the reason, where the controller's user looks). A rejoin
        with the same share keeps the trainer as it is."""
        assert self.from_share is not None and self._io is not None
        if share != self.share:
            try:
                setup = self.from_share(share)
            except Exception as exc:
                self.last_error = f"could not set up share {share}: {type(exc).__name__}: {exc}"
                log.exception("%s: %s", self.name, self.last_error)
            else:
                self.share = share
                self.executor, self.data = setup.executor, setup.data
                self.samples, self.device, self.labels = setup.samples, setup.device, list(setup.labels)
                self._shipped = None  # shipped code sees the new data
        self._io.send(wire.message(MessageKind.INFO, samples=self.samples, device=self.device, labels=self.labels))
        self._notify()

    def _executor_for(self, msg: wire.Message) -> Executor:
        """Shipped task code if the controller sent some (only to clients that opted in)."""
        code = msg.get("code")
        if not isinstance(code, str) or not self.accept_code:
            return self.executor
        if self._shipped is None or self._shipped[0] != code:
            self._shipped = (code, FunctionExecutor(tasks_from_source(code), self.data, self.device))
        return self._shipped[1]

    def _notify(self) -> None:
        if self.on_update is not None:
            try:
                self.on_update(self)
            except Exception:  # a display callback must not break training
                log.exception("%s: on_update failed", self.name)


class Runner:
    """The thread that runs tasks, kept apart from the IO thread so beats flow while a
    task trains. A client alone has its own; a host's logical clients share one, so
    a process of many clients trains one task at a time (:mod:`nbfl.participant.host`)."""

    def __init__(self, name: str = "nbfl-worker"):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, client: Client, item: wire.Message | Share) -> None:
        """Queue ``item`` (a task, or a share to set up) for ``client``; any thread."""
        self._queue.put((client, item))

    def close(self, timeout: float = 5.0) -> None:
        """End the thread once what is queued is done (a stopping client's tasks are skipped,
        and its stop aborted the one running); waits, as a thread still running torch at exit
        can abort the process."""
        self._queue.put(None)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _serve(self) -> None:
        while (entry := self._queue.get()) is not None:
            client, item = entry
            try:
                client._handle(item)
            except Exception:  # a bug in one client's handling: the host's other clients go on
                log.exception("%s: a task could not be handled", client.name)


def _missing_module(exc: BaseException) -> str:
    """One sentence for a task whose code imports what this machine lacks (the controller's
    ``%%fl_task`` code often uses a package a participant never installed); "" otherwise.
    Its traceback would only repeat it, so it goes to the controller alone."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        return f"the task's code imports {top!r}, which is not installed on this machine: install it here to take part"
    return ""


NBFL_DIR = os.path.dirname(os.path.abspath(__file__))


def user_traceback(exc: BaseException) -> str:
    """A task's failure as its author wants to read it: their own frames with their source
    lines, nbfl's frames (the same in every failure) folded into a count. A failure inside
    nbfl itself (a filter, the wire) keeps every frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if not os.path.abspath(f.filename).startswith(NBFL_DIR + os.sep)] or frames
    folded = len(frames) - len(mine)
    head = "Traceback (most recent call last" + (f"; {folded} frames inside nbfl not shown" if folded else "") + "):\n"
    return head + "".join(traceback.format_list(mine)) + "".join(traceback.format_exception_only(type(exc), exc))


def _arrays(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Executor output as numpy; CPU torch tensors convert without a copy."""
    out = {}
    for name, value in data.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[name] = np.asarray(value)
    return out


def _metrics(value: Any) -> dict[str, float]:
    """The numbers of a metrics dict from the controller; anything else is left out."""
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _json_safe(value: Any) -> Any:
    """Meta as plain JSON: numpy scalars become numbers, NaN becomes None, others str."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
