"""The controller: a registry of clients, the global model, rounds and their history.

Two threads are involved, each with one job:

* the IO thread (:class:`~nbfl.transport.ServerIO`) owns the ROUTER socket, validates
  frames, answers heartbeats and keeps the client registry live (joins, byes, lost
  clients) even when no round runs; round traffic goes to the round's inbox;
* the caller's thread runs :meth:`Controller.run`: it scatters tasks, pulls results
  a few at a time (so at most ``max_inflight`` results are in memory at once) and
  aggregates each one as it arrives. A KeyboardInterrupt there aborts the round on
  the clients and keeps the last complete global model.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from . import wire
from .executor import DataKind
from .filters import build as build_filters
from .filters.accountant import PrivacyLedger
from .limits import RateLimit
from .provision import Kit, as_kit
from .transport import HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, PLAINTEXT_NOTE, ServerIO
from .weights import Weights
from .workflows import FedAvg, RoundFailed, RoundStopped, make_workflow

log = logging.getLogger("nbfl.controller")

Evaluate = Callable[[Weights], Mapping[str, float]]


@dataclass
class ClientInfo:
    """What the controller knows of one client; shown in ``%fl_clients`` and dashboards."""

    name: str
    host: str
    device: str
    samples: int
    peer: bytes = field(repr=False)
    accepts_code: bool = False
    state: str = "idle"  # idle, training, lost, left
    last_seen: float = field(default_factory=time.time)
    last_round: int | None = None
    last_seconds: float | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """Connected and answering (not lost, not left)."""
        return self.state in ("idle", "training")


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
        return dict(self.meta.get("metrics") or {})


class Controller:
    """Holds the global model and drives rounds on the clients that joined.

    ``weights`` is a ``dict[str, np.ndarray]`` or a torch module (converted once through
    :mod:`nbfl.torch_adapter`). ``evaluate(weights) -> {"accuracy": ...}``, if given,
    runs on the controller after every round and its metrics go into :attr:`history`.

    With ``kit`` (a controller's startup kit from ``nbfl provision``, or its folder) every
    connection is CurveZMQ and only the kit's client keys are admitted, each under its
    listed name; ``endpoint`` then defaults to the kit's. Without a kit the controller
    listens in plaintext, on loopback only unless ``insecure=True``.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        weights: Any = None,
        *,
        kit: Kit | str | os.PathLike[str] | None = None,
        insecure: bool = False,
        evaluate: Evaluate | None = None,
        max_inflight: int = 2,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
        privacy_delta: float = 1e-5,
        join_rate: tuple[float, int] = (20.0, 100),
    ):
        self._weights: Weights = _as_weights(weights) if weights is not None else {}
        self.evaluate = evaluate
        self.max_inflight = max(1, max_inflight)
        self.history: list[dict[str, Any]] = []
        self.min_clients = 1
        # source of task functions (``%%fl_task``), sent only to clients that opted in
        self.task_code: dict[str, str] = {}
        self.filters: list[dict[str, Any]] = []  # asked of every client during run()
        self.privacy = PrivacyLedger(privacy_delta)  # epsilon each client spent through its DP filter
        self._joins = RateLimit(*join_rate)  # (per second, at once): a join flood is refused cheaply
        self._stop_requested = threading.Event()
        self._on_progress: Callable[[int, int], None] | None = None
        self._clients: dict[bytes, ClientInfo] = {}
        self._lock = threading.Lock()
        self._joined = threading.Condition(self._lock)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._round_record: dict[str, Any] | None = None
        self._round_timeout: float | None = None
        self.kit = as_kit(kit, "controller") if kit is not None else None
        if endpoint is None:
            endpoint = self.kit.endpoint if self.kit is not None else "tcp://127.0.0.1:0"
        self._io = ServerIO(
            endpoint, self._on_io_event, heartbeat_interval=heartbeat_interval, heartbeat_timeout=heartbeat_timeout,
            curve=self.kit.curve() if self.kit is not None else None, insecure=insecure,
        )  # fmt: skip
        self._io.start()
        self._closed = False
        log.info("controller listening on %s", self.endpoint)

    # -- public API -------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        """The address clients connect to, e.g. ``tcp://127.0.0.1:5555``."""
        return self._io.endpoint

    @property
    def security(self) -> str:
        """One line on how connections are protected, for dashboards and client tables."""
        if self.kit is None:
            return PLAINTEXT_NOTE
        n = len(self.kit.allowed_clients)
        keys = f"{n} client key{'s' if n != 1 else ''}"
        return f"CurveZMQ: encrypted and authenticated; {keys} allowed (project {self.kit.project})"

    @property
    def weights(self) -> Weights:
        """The last complete global model."""
        return self._weights

    @weights.setter
    def weights(self, value: Any) -> None:
        self._weights = _as_weights(value)

    @property
    def clients(self) -> list[ClientInfo]:
        """A snapshot of the registry, including clients that were lost or left."""
        with self._lock:
            return [ClientInfo(**vars(c)) for c in self._clients.values()]

    def live_clients(self) -> list[ClientInfo]:
        return [c for c in self.clients if c.live]

    def wait_for_clients(self, n: int, timeout: float | None = 60.0) -> list[ClientInfo]:
        """Block until ``n`` clients are connected; TimeoutError names how many came."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._joined:
            while sum(c.live for c in self._clients.values()) < n:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    have = sum(c.live for c in self._clients.values())
                    raise TimeoutError(f"{have} of {n} clients joined {self.endpoint} within {timeout} s")
                self._joined.wait(0.5 if remaining is None else min(remaining, 0.5))
        return self.live_clients()

    def run(
        self,
        rounds: int = 1,
        workflow: Any = None,
        *,
        min_clients: int = 1,
        timeout: float | None = None,
        join_timeout: float | None = 60.0,
        on_round: Callable[[dict[str, Any]], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        filters: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Run ``rounds`` rounds of ``workflow`` (FedAvg by default, or an algorithm's name); return their records.

        A round waits for every live client or ``timeout`` seconds; a client that dies
        is noticed by its missing heartbeats and the round goes on with the others.
        A round with fewer than ``min_clients`` usable results keeps the old model; if
        fewer than ``min_clients`` are still connected before a round, it waits up to
        ``join_timeout`` for them (TimeoutError if they do not come back).
        ``on_round(record)`` follows each round, ``on_progress(answered, asked)`` each
        answer within one, both on this thread. :meth:`stop` ends the run after
        aborting the round in progress. ``filters`` are specs of :mod:`nbfl.filters`
        every client applies to its updates this run (``[{"name": "dp", "clip": 1.0,
        "noise_multiplier": 1.0}]``), besides its own policy.
        """
        if not self._weights:
            raise ValueError("the controller has no model: pass weights=... or set controller.weights")
        workflow = make_workflow(workflow) if isinstance(workflow, str) else workflow or FedAvg()
        build_filters(filters)  # an unknown or bad spec fails here, not on every client
        self.filters = list(filters or [])
        self.min_clients = min_clients
        self._stop_requested.clear()
        self._on_progress = on_progress
        self.wait_for_clients(min_clients, join_timeout)
        records = []
        for _ in range(rounds):
            if len(self.live_clients()) < min_clients:  # some left: wait for them, do not fail rounds
                self.wait_for_clients(min_clients, join_timeout)
            record = self._run_round(workflow, timeout)
            records.append(record)
            if on_round is not None:
                on_round(record)
            if record["status"] == "stopped":
                break
        return records

    def note(self, key: str, value: Any) -> None:
        """A workflow adds ``key`` to the running round's record (a cross-site matrix, statistics)."""
        if self._round_record is not None:
            self._round_record[key] = value

    def restart(self, weights: Any) -> None:
        """Begin a new run from ``weights`` with the same clients: history and privacy ledger
        start empty, so rounds count from 1 again (comparisons of algorithms or noise levels)."""
        self.weights = weights
        self.history.clear()
        self.privacy = PrivacyLedger(self.privacy.delta)

    def stop(self) -> None:
        """Ask a running :meth:`run` to abort its round and return (thread-safe: a Stop button)."""
        self._stop_requested.set()

    def close(self) -> None:
        """Tell clients goodbye and stop the threads; the model and history stay readable."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            peers = [c.peer for c in self._clients.values() if c.live]
        for peer in peers:
            self._io.send(peer, wire.message("bye"))
        self._inbox.put(("closed", b"", None))
        self._io.stop()

    def __enter__(self) -> "Controller":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- rounds -----------------------------------------------------------------
    def _run_round(self, workflow: Any, timeout: float | None) -> dict[str, Any]:
        number = len(self.history) + 1
        name = getattr(workflow, "name", type(workflow).__name__.lower())
        record: dict[str, Any] = {"round": number, "workflow": name, "clients": {}, "failed": {}, "global": {}}
        self._round_record = record
        self._drain_inbox()
        started = time.perf_counter()
        self._round_timeout = timeout
        try:
            new = workflow.round(self, self._weights, number)
            self._weights = new
            record["status"] = "ok"
        except RoundStopped:
            record["status"] = "stopped"
            log.warning("round %d stopped; clients told to abort, global model is round %d's", number, number - 1)
        except RoundFailed as exc:
            record["status"] = f"failed: {exc}"
            log.warning("round %d failed, global model unchanged: %s", number, exc)
        except KeyboardInterrupt:
            record["status"] = "interrupted"
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            log.warning("round %d interrupted; clients told to abort, global model is round %d's", number, number - 1)
            raise
        finally:
            self._round_record = None
        # evaluation, statistics and other workflows that leave the model alone are not rated
        if record["status"] == "ok" and self.evaluate is not None and getattr(workflow, "trains", True):
            record["global"] = {k: float(v) for k, v in self.evaluate(self._weights).items()}
        record["seconds"] = time.perf_counter() - started
        self.history.append(record)
        log.info("round %d %s in %.2f s %s", number, record["status"], record["seconds"], record["global"])
        return record

    def scatter(
        self,
        task_name: str,
        weights: Mapping[str, np.ndarray],
        clients: list[ClientInfo] | None = None,
        meta: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Result]:
        """Send one task to each client and yield results as they arrive.

        At most ``max_inflight`` results are on their way at once: that many clients may
        send as soon as they finish, the rest are pulled one by one as slots free.
        Errors, lost clients and timeouts are recorded in the round's record and logged
        with the client's name; leaving the loop early (or an interrupt) aborts the
        tasks still running.
        """
        targets = clients if clients is not None else self.live_clients()
        timeout = timeout if timeout is not None else self._round_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        number = self._round_record["round"] if self._round_record else 0
        pending: dict[str, ClientInfo] = {}
        sent_at: dict[str, float] = {}
        ready: deque[str] = deque()
        inflight: set[str] = set()
        headers: dict[bytes, dict[str, Any]] = {}
        for client in targets:
            task_id = uuid.uuid4().hex
            pending[task_id] = client
            sent_at[task_id] = time.perf_counter()
            # the first max_inflight clients may send their result as soon as it is done;
            # the others announce "ready" and wait for a pull when one of those slots frees
            direct = len(inflight) < self.max_inflight
            if direct:
                inflight.add(task_id)
            headers[client.peer] = {
                "task_id": task_id, "task_name": task_name, "round": number,
                "kind": DataKind.WEIGHTS, "direct": direct,
                "meta": {**(meta or {}), "filters": self.filters} if self.filters else dict(meta or {}),
            }  # fmt: skip
            if client.accepts_code and task_name in self.task_code:
                headers[client.peer]["code"] = self.task_code[task_name]
            self._set_state(client.peer, "training")
        self._io.broadcast("task", weights, headers)
        if self._on_progress is not None:
            self._on_progress(0, len(targets))

        def pump() -> None:
            while ready and len(inflight) < self.max_inflight:
                task_id = ready.popleft()
                if task_id in pending:
                    inflight.add(task_id)
                    self._io.send(pending[task_id].peer, wire.message("pull", task_id=task_id))

        def finish(task_id: str, state: str = "idle") -> ClientInfo:
            inflight.discard(task_id)
            client = pending.pop(task_id)
            self._set_state(client.peer, state)
            pump()
            if self._on_progress is not None:
                self._on_progress(len(targets) - len(pending), len(targets))
            return client

        stopped_by = "was stopped"
        try:
            while pending:
                if self._stop_requested.is_set():
                    raise RoundStopped()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    stopped_by = f"timed out after {timeout} s"
                    break
                try:  # short waits, so a KeyboardInterrupt is seen promptly from any thread
                    kind, peer, msg = self._inbox.get(timeout=0.5 if remaining is None else min(remaining, 0.5))
                except queue.Empty:
                    continue
                if kind == "closed":
                    break
                if kind in ("lost", "bye"):
                    for task_id in [t for t, c in pending.items() if c.peer == peer]:
                        client = finish(task_id, "lost" if kind == "lost" else "left")
                        self._fail(client.name, "lost: no heartbeat" if kind == "lost" else "left")
                    continue
                task_id = msg.get("task_id")
                owner = pending.get(task_id) if isinstance(task_id, str) else None
                if owner is None or owner.peer != peer:
                    log.warning("%s for unknown task %r from %s: dropped", kind, task_id, self._name_of(peer))
                    self._io.send(peer, wire.message("error", reason=f"unknown task {task_id!r}"))
                    continue
                if kind == "ready":
                    ready.append(task_id)
                    pump()
                elif kind == "error":
                    client = finish(task_id)
                    reason = str(msg.get("reason", "error"))
                    tb = msg.get("traceback")
                    self._fail(client.name, reason + (f"\n{tb}" if tb else ""))
                elif kind == "result":
                    client = finish(task_id)
                    result = Result(
                        client=client.name,
                        kind=str(msg.get("kind", DataKind.WEIGHTS)),
                        weights=msg.tensors,
                        meta=msg.get("meta") if isinstance(msg.get("meta"), dict) else {},
                        seconds=time.perf_counter() - sent_at[task_id],
                    )
                    self._record_result(client, result, number)
                    yield result
        finally:
            for task_id, client in pending.items():
                self._io.send(client.peer, wire.message("abort", task_id=task_id))
                self._set_state(client.peer, "idle")
                self._fail(client.name, f"aborted: the round {stopped_by}")

    def reject(self, result: Result, reason: Exception | str) -> None:
        """A workflow refused ``result``: record it, log it and tell the client why."""
        self._fail(result.client, f"update rejected: {reason}")
        with self._lock:
            peer = next((c.peer for c in self._clients.values() if c.name == result.client), None)
        if peer is not None:
            self._io.send(peer, wire.message("error", reason=f"update rejected: {reason}"))
        if self._round_record is not None:
            self._round_record["clients"].pop(result.client, None)

    def _record_result(self, client: ClientInfo, result: Result, number: int) -> None:
        metrics = {k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))}
        with self._lock:
            info = self._clients.get(client.peer)
            if info is not None:
                info.last_round, info.last_seconds, info.last_metrics = number, result.seconds, metrics
        if self._round_record is not None:
            self._round_record["clients"][client.name] = {"seconds": result.seconds, **metrics}
            applied = result.meta.get("filters")
            if isinstance(applied, list) and applied:  # what this site says its update went through
                self._round_record.setdefault("filters", {})[client.name] = applied
                self.privacy.record(client.name, applied)
                spent = self.privacy.epsilons()
                self._round_record["privacy"] = {"epsilon": max(spent.values(), default=0.0),
                                                 "delta": self.privacy.delta, "clients": spent}  # fmt: skip

    def _fail(self, name: str, reason: str) -> None:
        log.error("client %s: %s", name, reason)
        if self._round_record is not None:
            self._round_record["failed"][name] = reason

    def _drain_inbox(self) -> None:
        while True:
            try:
                self._inbox.get_nowait()
            except queue.Empty:
                return

    # -- registry (IO thread: quick, never blocking) ------------------------------
    def _on_io_event(self, kind: str, peer: bytes, payload: Any) -> None:
        if kind == "heartbeat":
            with self._lock:
                if peer in self._clients:
                    self._clients[peer].last_seen = time.time()
        elif kind == "invalid":
            log.warning("refused a message from %s: %s", peer.hex(), payload)
        elif kind == "lost":
            self._set_state(peer, "lost")
            log.warning("client %s lost: no heartbeat for %s s", self._name_of(peer), self._io.heartbeat_timeout)
            self._forward(("lost", peer, None))
        else:
            self._on_message(peer, payload)

    def _on_message(self, peer: bytes, msg: wire.Message) -> None:
        if msg.kind == "join":
            self._on_join(peer, msg)
            return
        with self._lock:
            known = peer in self._clients and self._clients[peer].state != "left"
            if known:
                self._clients[peer].last_seen = time.time()
        if not known:
            log.warning("%s from a peer that has not joined (%s): dropped", msg.kind, peer.hex())
            self._io.send(peer, wire.message("error", reason="not joined", rejoin=True))
        elif msg.kind == "bye":
            self._set_state(peer, "left")
            self._io.forget(peer)
            log.info("client %s left", self._name_of(peer))
            self._forward(("bye", peer, msg))
        elif msg.kind in ("ready", "result", "error"):
            if not self._forward((msg.kind, peer, msg)):
                log.warning("%s from %s while no round runs: dropped", msg.kind, self._name_of(peer))
        else:
            log.warning("unexpected %r from client %s: dropped", msg.kind, self._name_of(peer))
            self._io.send(peer, wire.message("error", reason=f"a client may not send {msg.kind!r}"))

    def _on_join(self, peer: bytes, msg: wire.Message) -> None:
        if not self._joins.allow():
            log.warning("join from %s refused: more than %s joins a second", peer.hex(), self._joins.rate)
            self._io.send(peer, wire.message("error", reason="too many joins at once; try again in a moment"))
            return
        name = msg.get("name")
        if self.kit is not None:
            # the identity is the name the kit lists for the key that passed the handshake;
            # a name claimed in the message is only compared with it
            listed = self._io.authenticated_name(peer)
            if listed is None:
                self._io.send(peer, wire.message("error", reason="this connection was not authenticated"))
                return
            if name != listed:
                log.warning("a client with the key of %r joined as %r; it is listed as %r", listed, name, listed)
            name = listed
        if not isinstance(name, str) or not 0 < len(name) <= 64:
            self._io.send(peer, wire.message("error", reason="join needs a name of 1 to 64 characters"))
            return
        with self._lock:
            taken = any(c.name == name and c.peer != peer and c.live for c in self._clients.values())
            if not taken:
                # a rejoin under a new connection replaces the old entry of the same name
                for old in [p for p, c in self._clients.items() if c.name == name]:
                    del self._clients[old]
                self._clients[peer] = ClientInfo(
                    name=name,
                    host=str(msg.get("host", "?"))[:128],
                    device=str(msg.get("device", "cpu"))[:64],
                    samples=_int(msg.get("samples")),
                    peer=peer,
                    accepts_code=msg.get("accepts_code") is True,
                )
                self._joined.notify_all()
        if taken:
            log.warning("join refused: the name %r is taken by a connected client", name)
            self._io.send(peer, wire.message("error", reason=f"the name {name!r} is taken"))
            return
        self._io.admit(peer)
        self._io.send(peer, wire.message("welcome", name=name))
        log.info("client %s joined from %s (%s)", name, msg.get("host", "?"), msg.get("device", "cpu"))

    def _forward(self, item: tuple) -> bool:
        if self._round_record is None:  # no round runs: nobody would read it
            return False
        self._inbox.put(item)
        return True

    def _set_state(self, peer: bytes, state: str) -> None:
        with self._lock:
            info = self._clients.get(peer)
            # a lost or left client stays so until it joins again
            if info is not None and (info.live or state in ("lost", "left")):
                info.state = state
            self._joined.notify_all()

    def _name_of(self, peer: bytes) -> str:
        with self._lock:
            info = self._clients.get(peer)
        return info.name if info else f"<unknown {peer.hex()}>"


def _as_weights(value: Any) -> Weights:
    if isinstance(value, Mapping):
        return {str(k): np.asarray(v) for k, v in value.items()}
    if hasattr(value, "state_dict"):  # a torch module; torch is imported only here
        from .torch_adapter import get_weights

        return {k: v.copy() for k, v in get_weights(value).items()}
    raise TypeError(f"weights must be a dict of arrays or a torch module, not {type(value).__name__}")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
