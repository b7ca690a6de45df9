"""The controller: the global model, a registry of clients, and the runs that train it.

Threads, each with one job:

* the IO thread (:class:`~nbfl.transport.threads.ServerIO`) owns the ROUTER socket, validates
  frames, answers heartbeats and keeps the client registry live (joins, byes, lost
  clients) even when no run is going; a round's traffic goes to that run's inbox;
* a run's thread (:class:`~nbfl.controller.run.Run`, from :meth:`Controller.start`) scatters
  tasks, pulls results a few at a time (so at most ``max_inflight`` results of a large
  model, or 64 MiB of a small one's, are in memory at once) and aggregates each one as
  it arrives;
* the caller's thread is free: :meth:`Controller.run` waits on the run, and a
  KeyboardInterrupt there aborts the round on the clients and keeps the last complete
  global model.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import NbflError
from ..filters import build as build_filters
from ..filters.accountant import PrivacyLedger
from ..protocol import wire
from ..protocol.compress import check_codec
from ..protocol.joining import JoinCode
from ..protocol.names import ClientState, MessageKind
from ..protocol.panel import ControllerStatus
from ..protocol.records import ClientInfo, RoundRecord
from ..protocol.weights import Weights
from ..transport.control import ControlServer
from ..transport.guard import GuardSettings
from ..transport.limits import make_room_for
from ..transport.provision import Kit, as_kit
from ..transport.threads import HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, PLAINTEXT_NOTE, CurveConfig, ServerIO
from ..workflows import FedAvg, Workflow, make_workflow
from ..workflows.base import Stateful
from . import checkpoint
from .admission import Admission
from .memory import release_memory
from .registry import Registry
from .run import OnProgress, OnRound, Run, RunError
from .settings import RunSettings
from .status import panel_actions, panel_status
from .workshop import Workshop

log = logging.getLogger(__name__)


Evaluate = Callable[[Weights], Mapping[str, float]]


class RunActive(NbflError, RuntimeError):
    """A run is going on this controller; one at a time."""


class Controller:
    """Holds the global model and drives runs on the clients that joined.

    ``weights`` is a ``dict[str, np.ndarray]`` or a torch module (converted once through
    :mod:`nbfl.protocol.torch_adapter`). ``evaluate(weights) -> {"accuracy": ...}``, if given,
    runs on the controller after every round and its metrics go into the round's record.

    With ``checkpoint_dir`` it writes a checkpoint after every round (:mod:`nbfl.controller.checkpoint`:
    the model, the workflow's state, the history); ``resume=DIR`` starts from the last whole
    one in DIR (and keeps writing there): the next round is the one after it, and the
    next run of the same workflow takes up its state. Each checkpoint also lists
    :attr:`spawned`, the clients started beside the controller, which end with its kernel;
    a resumed controller has the previous session's in ``resumed.spawned``.

    With ``kit`` (a controller's startup kit from ``nbfl provision``, or its folder) every
    connection is CurveZMQ and only the kit's client keys are admitted, each under its
    listed name; ``endpoint`` then defaults to the kit's. With ``workshop``
    (:class:`~nbfl.controller.workshop.Workshop`) every connection is CurveZMQ with a key pair made
    now, anyone holding the :attr:`join_code` may join, and ``endpoint`` defaults to
    all interfaces on a free port. Without either the controller listens in plaintext,
    on loopback only unless ``insecure=True``.

    ``compress`` (``"float16"``, ``"int8"``; a workshop's own by default) is the codec of the
    model going out and the updates coming back in runs that do not choose one
    (:mod:`nbfl.protocol.compress`); clients that do not decode it get float32.

    It also serves a local control socket (:mod:`nbfl.transport.control`) for JupyterLab's
    Federation panel: status, stop and remove, answered while a cell runs.

    ``guard`` (:class:`~nbfl.transport.guard.GuardSettings`) sets what a peer may send: budgets of
    messages, bytes and joins, and the largest frame (by default twice the model's largest
    tensor). The counts of what was refused are in :meth:`defense`.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        weights: Any = None,
        *,
        kit: Kit | str | os.PathLike[str] | None = None,
        workshop: Workshop | None = None,
        insecure: bool = False,
        evaluate: Evaluate | None = None,
        max_inflight: int = 2,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        privacy_delta: float = 1e-5,
        guard: GuardSettings | None = None,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        resume: str | os.PathLike[str] | None = None,
        compress: str | None = None,
    ):
        self._weights: Weights = _as_weights(weights) if weights is not None else {}
        self.evaluate = evaluate
        self.max_inflight = max(1, max_inflight)
        self.history: list[RoundRecord] = []  # every round of every run, in order
        # source of task functions (``%%fl_task``), sent only to clients that opted in
        self.task_code: dict[str, str] = {}
        self.privacy = PrivacyLedger(privacy_delta)  # epsilon each client spent through its DP filter
        self.registry = Registry()
        self._run: Run | None = None  # the active run, if any
        self._pending_state: checkpoint.Checkpoint | None = None  # a resumed workflow state, until a run takes it
        self._starting = threading.Lock()
        # after every round a checkpoint goes here; resume=DIR also continues writing to DIR
        self.checkpoint_dir = checkpoint_dir if checkpoint_dir is not None else resume
        self.resumed: checkpoint.Checkpoint | None = None
        # names of the clients started on this machine for this controller (%fl_spawn), in order:
        # they end with its kernel, so each checkpoint lists them for the session that resumes it
        self.spawned: list[str] = []
        if resume is not None:
            self._resume(checkpoint.latest(resume))
        if kit is not None and workshop is not None:
            raise ValueError("a controller uses a startup kit or a workshop's join code, not both")
        self.kit = as_kit(kit, "controller") if kit is not None else None
        self.workshop = workshop
        self.admission = Admission(self.registry, self.kit, workshop, self._forward)
        self.compress = check_codec(compress) if compress is not None else workshop.compress if workshop else None
        curve = self.kit.curve() if self.kit is not None else None
        if workshop is not None:
            if self.resumed is not None and self._workshop_file().exists():  # the same key, token and people
                workshop.restore(self._workshop_file())
            curve = CurveConfig(workshop.public_key, workshop.secret_key, admit=workshop.admit_key, source="join line")
        if endpoint is None:  # a kit's own; a workshop on every interface; else loopback
            endpoint = (
                self.kit.endpoint if self.kit is not None else "tcp://0.0.0.0:0" if workshop else "tcp://127.0.0.1:0"
            )
        self.io = ServerIO(
            endpoint,
            self.admission.on_io_event,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            curve=curve,
            insecure=insecure,
            guard=(guard or GuardSettings()).for_model(*_sizes(self._weights)),
        )
        self.admission.io = self.io
        self.io.start()
        self._closed = False
        self._save_workshop()
        self.control = ControlServer(
            "controller",
            self.panel_status,
            panel_actions(self),
        ).start()
        log.info("controller listening on %s", self.endpoint)

    # -- public API -------------------------------------------------------------
    @property
    def compress(self) -> str | None:
        """The codec of runs that do not choose one, announced to every client in its welcome."""
        return self.admission.compress

    @compress.setter
    def compress(self, codec: str | None) -> None:
        self.admission.compress = check_codec(codec)

    @property
    def endpoint(self) -> str:
        """The address clients connect to, e.g. ``tcp://127.0.0.1:5555``."""
        return self.io.endpoint

    @property
    def join_code(self) -> JoinCode | None:
        """In workshop mode, what a participant pastes: address, this controller's key, the token."""
        if self.workshop is None:
            return None
        port = int(self.endpoint.rsplit(":", 1)[1])
        return JoinCode(self.workshop.host, port, self.workshop.public_key, self.workshop.token)

    @property
    def security(self) -> str:
        """One line on how connections are protected, for dashboards and client tables."""
        if self.workshop is not None:
            live = len(self.registry.live())
            return (
                f"CurveZMQ: encrypted; participants join with the join line's token "
                f"({live} of {self.workshop.capacity} places taken)"
            )
        if self.kit is None:
            return PLAINTEXT_NOTE
        n = len(self.kit.allowed_clients)
        keys = f"{n} client key{'s' if n != 1 else ''}"
        return f"CurveZMQ: encrypted and authenticated; {keys} allowed (project {self.kit.project})"

    def defense(self) -> dict[str, Any]:
        """What the controller refused since it started, for the instructor: messages (over a
        peer's budget, malformed, or not allowed before joining), joins, participants dropped
        (they did not read, or were removed), and the addresses most of it came from."""
        return self.io.guard.report()

    @property
    def weights(self) -> Weights:
        """The last complete global model."""
        return self._weights

    @weights.setter
    def weights(self, value: Any) -> None:
        self._refuse_during_run("set the model")
        self._weights = _as_weights(value)
        largest, _ = _sizes(self._weights)
        limit = self.io.guard.settings.max_frame or 0
        if largest > limit:  # ZeroMQ would cut off a client that sends a tensor this large
            log.warning(
                "the new model's largest tensor (%d bytes) is over the frame limit set when the controller "
                "started (%d bytes): clients would be disconnected sending it; start a controller with this "
                "model, or pass guard=GuardSettings(max_frame=...)",
                largest,
                limit,
            )

    @property
    def clients(self) -> list[ClientInfo]:
        """A snapshot of the registry, including clients that were lost or left."""
        return self.registry.snapshot()

    @property
    def active_run(self) -> Run | None:
        """The run going on now, or None."""
        run = self._run
        return run if run is not None and not run.done() else None

    @property
    def last_run(self) -> Run | None:
        """The run going on now, or the one that ended last (None before the first)."""
        return self._run

    def live_clients(self) -> list[ClientInfo]:
        return self.registry.live()

    def expect_joins(self, n: int, address: str = "127.0.0.1") -> None:
        """Let ``n`` more clients join from ``address`` at once: those this controller's user
        starts there (``%fl_spawn``, ``spawn_clients(controller, ...)``). A controller otherwise
        admits joins at a room's pace (:class:`~nbfl.transport.guard.GuardSettings`: bursts of
        32 from one address, then 2 a second), so a thousand simulated clients would take minutes."""
        make_room_for(len(self.registry.live()) + n)
        self.io.call(self.io.guard.expect, address, n)

    def wait_for_clients(self, n: int, timeout: float | None = 60.0) -> list[ClientInfo]:
        """Block until ``n`` clients are connected; TimeoutError names how many came."""
        return self.registry.wait_for(n, timeout, self.endpoint, self.check_alive)

    def start(
        self,
        rounds: int = 1,
        workflow: Any = None,
        settings: RunSettings | None = None,
        *,
        on_round: OnRound | None = None,
        on_progress: OnProgress | None = None,
        **changes: Any,
    ) -> Run:
        """Start ``rounds`` rounds of ``workflow`` (FedAvg by default, or an algorithm's name)
        in the background and return the :class:`~nbfl.controller.run.Run` handle at once.

        ``settings`` (:class:`~nbfl.controller.settings.RunSettings`), with ``changes`` to
        its fields as keywords (``min_clients=3, timeout=60``), are this run's own:
        A round starts once ``min_clients`` are connected (the run waits up to
        ``join_timeout`` for them, and fails with TimeoutError if they do not come). It
        waits for every live client, at most ``timeout`` seconds; with ``grace``, only
        that many seconds more once its quorum of ``min_results`` results (default
        ``min_clients``) is in: slower clients are told to stop and listed in the
        record's ``notes["late"]``, and a result of theirs that comes later is dropped
        with one log line. A client that dies is noticed by its missing heartbeats and
        the round goes on with the others. A round short of its quorum fails and keeps
        the old model.
        ``on_round(record)`` follows each round, ``on_progress(answered, asked)`` each
        answer within one, both on the run's thread. ``filters`` are specs of
        :mod:`nbfl.filters` every client applies to its updates this run
        (``[{"name": "dp", "clip": 1.0, "noise_multiplier": 1.0}]``), besides its own policy.
        ``compress`` (``"float16"``, ``"int8"``, ``"int16"`` or ``"none"``; the controller's
        :attr:`compress` by default) shrinks the model going out and the updates coming
        back, for the clients that decode it (:mod:`nbfl.protocol.compress`); the bytes each
        round moved are in its record's ``traffic``.
        One run at a time: starting another while one is going raises :class:`RunActive`.
        """
        settings = dataclasses.replace(settings or RunSettings(), **changes)
        if not self._weights:
            raise ValueError("the controller has no model: pass weights=... or set controller.weights")
        if rounds < 1:
            raise ValueError(f"a run needs at least 1 round, not {rounds}")
        self.check_alive()
        workflow = make_workflow(workflow) if isinstance(workflow, str) else workflow or FedAvg()
        if not isinstance(workflow, Workflow):
            raise TypeError(f"{workflow!r} is not a workflow: it needs name, trains and round(run, weights, number)")
        self._restore_workflow(workflow)
        build_filters(list(settings.filters))  # an unknown or bad spec fails here, not on every client
        codec = check_codec(settings.compress) if settings.compress is not None else self.compress
        with self._starting:  # the check and the claim are one step: two callers cannot both pass
            self._refuse_during_run("start another run")
            run = self._run = Run(
                self, rounds, workflow, settings, codec=codec, on_round=on_round, on_progress=on_progress
            )
        # begun only once it is self._run: the IO thread forwards the first results to it
        return run.begin()

    def run(
        self, rounds: int = 1, workflow: Any = None, settings: RunSettings | None = None, **changes: Any
    ) -> list[RoundRecord]:
        """``start(rounds, workflow, settings, **changes).wait()``: run the rounds here and return their records.

        Ctrl-C aborts the round on the clients, keeps the last complete model, and is raised again.
        """
        return self.start(rounds, workflow, settings, **changes).wait()

    def restart(self, weights: Any) -> None:
        """Begin afresh from ``weights`` with the same clients: history and privacy ledger
        start empty, so rounds count from 1 again (comparisons of algorithms or noise levels)."""
        self.weights = weights
        self.history.clear()
        self._pending_state = None
        self.privacy = PrivacyLedger(self.privacy.delta)

    def remove(self, name: str) -> None:
        """Disconnect client ``name`` and keep it out: its name (and in a workshop its key)
        is refused from now on, and a workshop's token is rotated, since the removed
        participant saw it. A run going on carries on without it."""
        peer = self.registry.peer_of(name)
        if peer is None:
            raise KeyError(f"no client named {name!r} has joined")
        self.admission.removed.add(name)
        if self.workshop is not None:
            self.workshop.remove(name)
            self._save_workshop()
        self.io.send(
            peer, wire.message(MessageKind.BYE, reason="removed by whoever runs the controller (the instructor)")
        )
        self.io.ban(peer)  # nothing more it sends is read
        self.registry.set_state(peer, ClientState.REMOVED)
        self._forward(("removed", peer, None))
        log.warning("client %s removed", name)

    def stop(self) -> None:
        """Stop the active run, if any (thread-safe: a Stop button)."""
        run = self._run
        if run is not None:
            run.stop()

    def close(self) -> None:
        """Stop the active run, tell clients goodbye and stop the threads; the model and
        history stay readable."""
        if self._closed:
            return
        self._closed = True
        run = self.active_run
        if run is not None:
            run.stop()
            concurrent.futures.wait([run.future()], timeout=10)  # the abort goes out before the bye
        for client in self.registry.live():
            self.io.send(client.peer, wire.message(MessageKind.BYE))
        self.io.stop()
        self.control.close()
        release_memory()  # what its threads freed goes back to the system: the kernel keeps running

    def __enter__(self) -> "Controller":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def panel_status(self) -> ControllerStatus:
        """The controller as JupyterLab's Federation panel shows it (:mod:`.status`)."""
        return panel_status(self)

    # -- for runs (nbfl.controller.run.Host) -------------------------------------------------
    def adopt(self, weights: Weights) -> None:
        self._weights = weights

    def round_done(self, workflow: Workflow, record: RoundRecord) -> None:
        """Write the checkpoint of the round just recorded; a failure to write is noted in the
        round's record and logged, and the run goes on (the previous checkpoint stays whole)."""
        if self.checkpoint_dir is None:
            return
        try:
            checkpoint.save(self.checkpoint_dir, self._weights, self.history, workflow, self.spawned)
            self._save_workshop()
        except (OSError, ValueError) as exc:
            log.error("checkpoint after round %d not written: %s", record.round, exc)
            record.notes["checkpoint_error"] = str(exc)

    def _workshop_file(self) -> Path:
        assert self.checkpoint_dir is not None
        return Path(self.checkpoint_dir) / "workshop.json"

    def _save_workshop(self) -> None:
        """A workshop's key, token and participants go beside the checkpoints (mode 0600), so a
        restarted controller is the same one to the clients: they rejoin by themselves."""
        if self.workshop is not None and self.checkpoint_dir is not None:
            Path(self.checkpoint_dir).mkdir(parents=True, exist_ok=True)
            self.workshop.save(self._workshop_file())

    def _resume(self, saved: checkpoint.Checkpoint) -> None:
        if self._weights:  # a model was given too: it must be the same model
            mismatch = sorted(
                k
                for k in set(self._weights) | set(saved.weights)
                if k not in self._weights or k not in saved.weights or self._weights[k].shape != saved.weights[k].shape
            )
            if mismatch:
                raise ValueError(
                    f"the checkpoint in {saved.path} is of another model: {', '.join(mismatch[:5])} differ"
                )
        self._weights = {k: np.array(v) for k, v in saved.weights.items()}
        self.history[:] = saved.history
        self.resumed = saved
        self._pending_state = saved
        log.info("resumed from %s: %d rounds done", saved.path, saved.round)

    def _restore_workflow(self, workflow: Workflow) -> None:
        """The first run after a resume takes up the checkpoint's workflow state, if it is that workflow."""
        saved, self._pending_state = self._pending_state, None
        if saved is None or saved.workflow != workflow.name:
            return
        if isinstance(workflow, Stateful) and (saved.workflow_arrays or saved.workflow_meta):
            workflow.load_state(saved.workflow_arrays, saved.workflow_meta)

    @property
    def he_context(self) -> bytes | None:
        """The public HE context of this controller's kit (a ``he = true`` project), or None."""
        return self.kit.he_context() if self.kit is not None else None

    def check_alive(self) -> None:
        failure = self.admission.failure
        if failure is not None:
            raise RunError(f"the controller at {self.endpoint} lost its IO thread: {failure!r}") from failure
        if self._closed:
            raise RunError(f"the controller at {self.endpoint} is closed")

    def _refuse_during_run(self, what: str) -> None:
        run = self.active_run
        if run is not None:
            raise RunActive(f"cannot {what} while a run is going ({run.summary()}): wait for it or stop it first")

    def _forward(self, item: tuple) -> bool:
        run = self._run
        return run is not None and run.deliver(item)


def _as_weights(value: Any) -> Weights:
    if isinstance(value, Mapping):
        return {str(k): np.asarray(v) for k, v in value.items()}
    if hasattr(value, "state_dict"):  # a torch module; torch is imported only here
        from ..protocol.torch_adapter import get_weights

        return {k: v.copy() for k, v in get_weights(value).items()}
    raise TypeError(f"weights must be a dict of arrays or a torch module, not {type(value).__name__}")


def _sizes(weights: Weights) -> tuple[int, int]:
    """The bytes of a model's largest tensor and of all of it (what a participant's messages carry)."""
    sizes = [a.nbytes for a in weights.values()]
    return max(sizes, default=0), sum(sizes)
