"""A run: some rounds of one workflow, on its own thread, behind a handle.

:meth:`Controller.start <nbfl.controller.controller.Controller.start>` returns a :class:`Run` at
once, in the manner of ``concurrent.futures.Future`` (and ipyparallel's
``AsyncResult``): ``wait()``, ``stop()``, ``done()``, ``result()``, ``exception()``,
``add_done_callback()``, plus the live ``round`` and ``history``. Rounds go on in the
background while the notebook does other things; ``Controller.run()`` is
``start(...).wait()``.

Everything that belongs to one run lives here: the workflow, ``min_clients``, the
timeouts, the filters asked of clients, the round in progress and its inbox. Nothing of
it is on the controller, so no run (or magic) can change another's settings.

Threads: the run's thread scatters tasks and aggregates; the controller's IO thread
puts the round's traffic (results, errors, lost clients) into the run's inbox. Neither
touches the other's state except through that queue and the registry's lock.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections import deque
from typing import Any, Callable, Iterator, Mapping, Protocol

import numpy as np

from ..errors import NbflError
from ..filters.accountant import PrivacyLedger
from ..protocol import compress, messages, names, wire
from ..protocol.names import ClientState, DataKind, MessageKind
from ..protocol.records import MAX_METRICS, ClientInfo, Result, RoundRecord, RoundStatus, finite_metrics
from ..protocol.weights import Weights, first_not_finite
from ..transport.threads import ServerIO
from ..workflows.base import RoundFailed, RoundStopped, Workflow
from .memory import release_memory
from .registry import Registry
from .settings import RunSettings
from .tensorboard import ScalarLog

log = logging.getLogger(__name__)

Evaluate = Callable[[Weights], Mapping[str, float]]
OnRound = Callable[[RoundRecord], None]
OnProgress = Callable[[int, int], None]
# what the controller forwards when a client goes: its state, and why its task failed
GONE = {  # what the controller forwards when a client goes (by kind): its new state, and why its task failed
    "lost": (ClientState.LOST, "lost: no heartbeat, or its connection dropped"),
    MessageKind.BYE: (ClientState.LEFT, "left"),
    "removed": (ClientState.REMOVED, "removed by the instructor"),
}
MAX_REASON = 300  # characters of a client's reason kept for its row in the client table


class RunError(NbflError, RuntimeError):
    """The run cannot go on: the controller's IO thread died, or the controller was closed."""


class Host(Protocol):
    """What a run uses of its controller (:class:`nbfl.controller.controller.Controller`)."""

    @property
    def endpoint(self) -> str: ...  # read-only: the controller's is a property

    @property
    def he_context(self) -> bytes | None: ...  # the kit's public HE context, if it has one

    registry: Registry
    io: ServerIO
    evaluate: Evaluate | None
    max_inflight: int
    task_code: dict[str, str]
    privacy: PrivacyLedger
    history: list[RoundRecord]
    weights: Weights  # the last complete global model

    def adopt(self, weights: Weights) -> None:
        """Make ``weights`` the global model (a round completed)."""
        ...

    def check_alive(self) -> None:
        """Raise :class:`RunError` if the controller cannot talk to its clients any more."""
        ...

    def round_done(self, workflow: Workflow, record: RoundRecord) -> None:
        """A round is in the history: the controller may write a checkpoint."""
        ...


DIRECT_BYTES = 64 << 20  # results of a small model that may be on their way together, unasked


def direct_slots(weights: Mapping[str, np.ndarray], max_inflight: int) -> int:
    """How many results may be on their way at once: ``max_inflight`` for a large model (the
    controller's memory stays flat however many clients answer), more for a small one, up
    to :data:`DIRECT_BYTES` of results (each then comes as soon as it is done: a pull would
    cost a round trip worth more than the model)."""
    size = sum(w.nbytes for w in weights.values())
    return max(max_inflight, DIRECT_BYTES // max(1, size))


class Run:
    """Rounds of ``workflow`` on ``host``'s clients; made by ``Controller.start``, not directly."""

    def __init__(
        self,
        host: Host,
        rounds: int,
        workflow: Workflow,
        settings: RunSettings,
        *,
        codec: str | None = None,
        on_round: OnRound | None = None,
        on_progress: OnProgress | None = None,
    ):
        self.rounds = rounds
        self.workflow = workflow
        self.settings = settings
        self.min_clients = settings.min_clients  # connected clients a round starts with
        self.min_results = settings.quorum  # usable results that close a round
        self.grace = settings.grace  # seconds the round waits for slower clients once the quorum is in (None: for all)
        self.timeout = settings.timeout
        self.join_timeout = settings.join_timeout
        self.filters = list(settings.filters)
        self.compress = codec  # of the model going out and the updates coming back (the setting, or the controller's)
        self.evaluate = host.evaluate
        self.he_context = host.he_context  # the kit's public HE context, for he_fedavg by name
        self.history: list[RoundRecord] = []  # this run's rounds, as they complete
        self.round = 0  # this run's round in progress (1 .. rounds), or its last; records number rounds controller-wide
        self.progress = (0, 0)  # (answered, asked) in the round in progress, or the last
        # how to get this run's dashboard back after a page reload: the notebook's magics
        # say it, the Federation panel shows it while the run goes
        self.view_hint = ""
        self._host = host
        self._on_round = on_round
        self._on_progress = on_progress
        self._scalars = ScalarLog(settings.log_dir) if settings.log_dir else None  # no folder: start() says why
        self._future: concurrent.futures.Future[list[RoundRecord]] = concurrent.futures.Future()
        self._stop = threading.Event()
        self._stop_status = RoundStatus.STOPPED
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._record: RoundRecord | None = None  # the round gathering results: the IO thread forwards to it
        self._closed_tasks: set[str] = set()  # the last round's aborted tasks: their results come late
        self._thread = threading.Thread(target=self._main, name="nbfl-run", daemon=True)
        self._holds: list[threading.Event] = []  # one per cell waiting on the run (:meth:`hold`)
        self._holds_lock = threading.Lock()

    # -- the handle ----------------------------------------------------------------
    def hold(self) -> threading.Event:
        """For a cell about to wait on the run (a blocking ``%fl_round``): an event set when
        the run ends or :meth:`detach` lets the cell go."""
        released = threading.Event()
        with self._holds_lock:
            self._holds.append(released)
        self.add_done_callback(lambda _: released.set())
        return released

    @property
    def held(self) -> bool:
        """Whether a cell waits on the run now: the notebook's kernel runs nothing else meanwhile."""
        with self._holds_lock:
            return any(not h.is_set() for h in self._holds)

    def detach(self) -> bool:
        """Let every cell waiting on the run end while the run goes on; False if none waited.
        After a page reload such a cell holds the kernel, and the reloaded page can run
        nothing (not even ``%fl_status``) until the run ends: the Federation panel's Detach
        calls this from outside the kernel."""
        with self._holds_lock:
            holds, self._holds = [h for h in self._holds if not h.is_set()], []
        for released in holds:
            released.set()
        return bool(holds)

    def done(self) -> bool:
        """True once the run has ended: all rounds done, stopped, or failed."""
        return self._future.done()

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` (or an interrupt) ended the run before all its rounds."""
        return self._stop.is_set()

    def stop(self) -> None:
        """End the run: the round in progress is aborted on the clients and the global
        model stays the last complete one. Thread-safe and quick (a Stop button); the run
        ends within about half a second, :meth:`wait` tells when."""
        self._halt(RoundStatus.STOPPED)

    def interrupt(self) -> None:
        """What Ctrl-C (the kernel's interrupt) does: :meth:`stop`, recorded as ``interrupted``."""
        self._halt(RoundStatus.INTERRUPTED)

    def wait(self, timeout: float | None = None) -> list[RoundRecord]:
        """Block until the run ends; return its records or raise what ended it.

        A KeyboardInterrupt (Ctrl-C, the kernel's interrupt) while waiting stops the run,
        waits for the abort to reach the clients, and is raised again.
        """
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            if self._future.done():  # the run's own TimeoutError (its clients did not come)
                raise
            raise TimeoutError(
                f"the run is still going after {timeout} s (round {self.round} of {self.rounds})"
            ) from None
        except KeyboardInterrupt:
            self.interrupt()
            concurrent.futures.wait([self._future], timeout=30)
            raise

    def result(self, timeout: float | None = None) -> list[RoundRecord]:
        """The run's records (as :meth:`wait`)."""
        return self.wait(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """What ended the run, or None if it ended normally (waits like :meth:`wait`)."""
        try:
            return self._future.exception(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"the run is still going after {timeout} s") from None

    def add_done_callback(self, fn: Callable[["Run"], None]) -> None:
        """Call ``fn(run)`` when the run ends (at once if it has), on the thread that ends it."""
        self._future.add_done_callback(lambda _: fn(self))

    def future(self) -> concurrent.futures.Future:
        """The underlying future (for ``concurrent.futures.wait`` and the like)."""
        return self._future

    @property
    def failed_rounds(self) -> list[RoundRecord]:
        """This run's rounds that ended without a new model (too few usable results)."""
        return [r for r in self.history if r.status is RoundStatus.FAILED]

    @property
    def completed(self) -> int:
        """This run's rounds that ran to the end (ok or failed), not one stopped midway."""
        return sum(r.status in (RoundStatus.OK, RoundStatus.FAILED) for r in self.history)

    @property
    def offset(self) -> int:
        """Rounds of earlier runs: the controller numbers rounds on from them (its history, the
        chart, the client table), this run from 1. Round ``k`` of the run is ``offset + k`` overall."""
        return len(self._host.history) - len(self.history)

    def label(self, k: int) -> str:
        """``round 3 of 10``, and where earlier runs make the numbers differ, ``(round 23 overall)``."""
        overall = f" (round {self.offset + k} overall)" if self.offset else ""
        return f"round {k} of {self.rounds}{overall}"

    def summary(self) -> str:
        """One line on where the run is, counted in this run's rounds (and overall, where
        earlier runs make that differ): the dashboard's headline, ``%fl_status`` and the panel say this."""
        done = self.completed
        failed = self.failed_rounds
        last = self.history[-1] if self.history else None
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in (last.metrics if last else {}).items())
        tail = f"; {metrics}" if metrics else ""
        if failed:
            tail += f"; {len(failed)} failed (round {failed[-1].round}: {failed[-1].reason})"
        tail += self._client_failures() + self._sampling()
        if not self.done():
            where = self.label(self.round) if self.round else "waiting for clients"
            return f"running: {where}{tail}"
        error = self._future.exception()
        if error is not None:
            return f"failed after {done} of {self.rounds} rounds: {type(error).__name__}: {error}"
        overall = f" (to round {self.offset + done} overall)" if self.offset and done else ""
        if self.stopped:
            return f"stopped after {done} of {self.rounds} rounds{overall}{tail}"
        return f"finished {done} of {self.rounds} rounds{overall}{tail}"

    def describe(self) -> list[str]:
        """The workflow's name and each setting this run changed: ``["fedprox", "sample=10"]``."""
        changed = {k: v for k, v in self.settings.changed().items() if k != "join_timeout"}
        return [self.workflow.name, *(f"{k}={v}" for k, v in changed.items())]

    def _sampling(self) -> str:
        """``; sampled 3 of 10 (seed 7): site-01, site-04, site-07``: who the last round trained,
        when the run samples, so the dashboard, ``%fl_status`` and the panel say it."""
        last = next((r for r in reversed(self.history) if r.sampled), None)
        if last is None:
            return ""
        names_ = ", ".join(last.sampled[:5]) + (", ..." if len(last.sampled) > 5 else "")
        connected = max(len(last.sampled), len(self._host.registry.live()))
        return f"; sampled {len(last.sampled)} of {connected} (seed {last.sample_seed}): {names_}"

    def _client_failures(self) -> str:
        """``; 1 client failed in every round (site-3)``: a participant whose every task fails
        is otherwise hidden in a run whose rounds all end "ok" on the others' results."""
        rounds = [r for r in self.history if r.status not in (RoundStatus.STOPPED, RoundStatus.INTERRUPTED)]
        counts: dict[str, int] = {}
        for record in rounds:
            for name in record.failed:
                counts[name] = counts.get(name, 0) + 1
        parts = []
        for how, names_ in (
            ("in every round", [n for n, k in counts.items() if k == len(rounds)]),
            ("in some rounds", [n for n, k in counts.items() if k < len(rounds)]),
        ):
            if names_:
                shown = ", ".join(sorted(names_)[:3]) + (", ..." if len(names_) > 3 else "")
                parts.append(f"{len(names_)} client{'s' if len(names_) > 1 else ''} failed {how} ({shown})")
        return "".join(f"; {part}" for part in parts)

    def __repr__(self) -> str:
        return f"<nbfl.Run {self.workflow.name} {self.summary()}>"

    # -- what a workflow uses (nbfl.workflows.base.RoundContext) ---------------------
    def live_clients(self) -> list[ClientInfo]:
        return self._host.registry.live()

    def note(self, key: str, value: Any) -> None:
        if self._record is not None:
            self._record.notes[key] = value

    def reject(self, result: Result, reason: Exception | str) -> None:
        self._fail(result.client, f"update rejected: {reason}")
        peer = self._host.registry.peer_of(result.client)
        if peer is not None:
            self._host.io.send(peer, wire.message(MessageKind.ERROR, reason=f"update rejected: {reason}"))
        if self._record is not None:
            self._record.clients.pop(result.client, None)

    def scatter(
        self,
        task_name: str,
        weights: Mapping[str, np.ndarray],
        clients: list[ClientInfo] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Iterator[Result]:
        """Send one task to each client and yield results as they arrive.

        At most ``max_inflight`` results are on their way at once: that many clients may
        send as soon as they finish, the rest are pulled one by one as slots free.
        Errors, lost clients and timeouts are recorded in the round's record and logged
        with the client's name; leaving the loop early (or a stop) aborts the tasks
        still running.
        """
        host, registry = self._host, self._host.registry
        number = self._record.round if self._record else 0
        targets = clients if clients is not None else self._sampled()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        task_meta = {**(meta or {}), names.FILTERS: self.filters} if self.filters else dict(meta or {})
        pending: dict[str, ClientInfo] = {}
        sent_at: dict[str, float] = {}
        ready: deque[str] = deque()
        inflight: set[str] = set()
        slots = direct_slots(weights, host.max_inflight)
        headers: dict[bytes, messages.Task] = {}
        codes: dict[bytes, str] = {}  # whose code each client runs: the table's "code" column
        last = (
            host.history[-1] if host.history else None
        )  # the global model's metrics, shown beside a participant's own
        # finite only: a header's JSON refuses NaN, and a resumed history may be older than that rule
        global_metrics = {"round": last.round, "metrics": finite_metrics(last.metrics)} if last is not None else None
        ids = os.urandom(16 * len(targets)).hex()  # one system call for the round's task ids, not one each
        for i, client in enumerate(targets):
            task_id = ids[32 * i : 32 * i + 32]
            pending[task_id] = client
            sent_at[task_id] = time.perf_counter()
            # the first clients (as many as there are slots) may send their result as soon as it
            # is done; the others announce "ready" and wait for a pull when one of those slots frees
            direct = len(inflight) < slots
            if direct:
                inflight.add(task_id)
            headers[client.peer] = {
                "task_id": task_id,
                "task_name": task_name,
                "round": number,
                "kind": DataKind.WEIGHTS,
                "direct": direct,
                "meta": task_meta,
                "global_metrics": global_metrics,
            }
            shipped = client.accepts_code and task_name in host.task_code
            if shipped:
                headers[client.peer]["code"] = host.task_code[task_name]
            codes[client.peer] = "%%fl_task" if shipped else "own"
        registry.tasked(codes)
        self._broadcast(weights, headers, {c.peer for c in targets if self.compress in c.codecs})
        self._progress(0, len(targets))

        def pump() -> None:
            while ready and len(inflight) < slots:
                task_id = ready.popleft()
                if task_id in pending:
                    inflight.add(task_id)
                    host.io.send(pending[task_id].peer, wire.message(MessageKind.PULL, task_id=task_id))

        def finish(task_id: str, state: ClientState = ClientState.IDLE) -> ClientInfo:
            inflight.discard(task_id)
            client = pending.pop(task_id)
            registry.set_state(client.peer, state)
            pump()
            self._progress(len(targets) - len(pending), len(targets))
            return client

        ended_by: str | None = "ended early"  # why tasks still pending are aborted; None: not a failure
        got, grace_end = 0, None  # results so far; when the grace after the quorum runs out
        late: list[str] = []
        try:
            while pending:
                if self._stop.is_set():
                    ended_by = None
                    raise RoundStopped()
                now = time.monotonic()
                if grace_end is not None and now >= grace_end:  # slower clients are stragglers, not failures
                    ended_by, late = None, [c.name for c in pending.values()]
                    break
                ends = [t for t in (deadline, grace_end) if t is not None]
                remaining = min(ends) - now if ends else None
                if deadline is not None and now >= deadline:
                    ended_by = f"timed out after {self.timeout} s"
                    break
                try:  # short waits, so a stop is seen promptly
                    kind, peer, msg = self._inbox.get(timeout=0.5 if remaining is None else min(remaining, 0.5))
                except queue.Empty:
                    continue
                if kind == "stop":
                    continue  # the check above ends the round
                if kind == "died":
                    ended_by = "lost its connection"
                    raise RunError(f"the controller's IO thread died: {msg!r}") from msg
                if kind in GONE:
                    state, why = GONE[kind]
                    for task_id in [t for t, c in pending.items() if c.peer == peer]:
                        self._fail(finish(task_id, state).name, why)
                    continue
                task_id = msg.get("task_id")
                if not isinstance(task_id, str):  # anything may come from the network: a list, a dict
                    task_id = repr(task_id)[:80]
                owner = pending.get(task_id)
                if owner is None and task_id in self._closed_tasks:  # it was on its way when its round closed
                    log.info("late %s from %s dropped: its round had closed", kind, registry.name_of(peer))
                    continue
                if owner is None or owner.peer != peer:
                    log.warning("%s for unknown task %r from %s: dropped", kind, task_id, registry.name_of(peer))
                    host.io.send(peer, wire.message(MessageKind.ERROR, reason=f"unknown task {task_id!r}"))
                    continue
                if kind == "ready":
                    ready.append(task_id)
                    pump()
                elif kind == "error":
                    reason = str(msg.get("reason", "error"))
                    registry.update(peer, last_error=reason[:MAX_REASON])  # before the table's refresh
                    client = finish(task_id)
                    tb = msg.get("traceback")  # it ends with the exception, which is the reason
                    self._fail(client.name, str(tb) if tb else reason)
                elif kind == "result":
                    client = finish(task_id)
                    try:
                        tensors = compress.received(msg, weights)  # checked against the model first
                    except compress.CompressionError as exc:
                        self._fail(client.name, f"its compressed result could not be read: {exc}")
                        continue
                    result = Result(
                        client=client.name,
                        kind=str(msg.get("kind", DataKind.WEIGHTS)),
                        weights=tensors,
                        meta=msg.get("meta") if isinstance(msg.get("meta"), dict) else {},
                        seconds=time.perf_counter() - sent_at[task_id],
                    )
                    self._record_result(client, result, number)
                    got += 1
                    if self.grace is not None and grace_end is None and got >= self.min_results:
                        grace_end = time.monotonic() + self.grace
                    yield result
        finally:
            for task_id, client in pending.items():
                host.io.send(client.peer, wire.message(MessageKind.ABORT, task_id=task_id))
                registry.set_state(client.peer, ClientState.IDLE)
                if ended_by is not None:  # a stop is the user's wish, not the client's failure
                    self._fail(client.name, f"aborted: the round {ended_by}")
            self._closed_tasks = set(pending)
            if late and self._record is not None:
                self._record.notes["late"] = late
                log.info(
                    "round %d closed %s s after its quorum; stragglers told to stop: %s",
                    number,
                    self.grace,
                    ", ".join(late),
                )

    def _broadcast(
        self, weights: Mapping[str, np.ndarray], headers: dict[bytes, messages.Task], packed: set[bytes]
    ) -> None:
        """Send each client its task: compressed (and asked to compress its result) if the run
        compresses and the client said at join that it decodes that codec; as it is otherwise."""
        io = self._host.io
        plain = {peer: fields for peer, fields in headers.items() if peer not in packed}
        if plain:
            io.broadcast(MessageKind.TASK, weights, plain)
        if packed:
            assert self.compress is not None  # packed: the clients that decode the run's codec
            tensors, spec = compress.pack(weights, self.compress)
            io.broadcast(
                MessageKind.TASK,
                tensors,
                {
                    peer: {**fields, "compress": spec, "compress_results": self.compress}
                    for peer, fields in headers.items()
                    if peer in packed
                },
            )

    # -- for the controller's IO thread ------------------------------------------------
    def deliver(self, item: tuple[str, bytes, Any]) -> bool:
        """Queue a message for the round gathering results; False if none is (nobody would read it)."""
        if self._record is None:
            return False
        self._inbox.put(item)
        return True

    def begin(self) -> "Run":
        self._future.set_running_or_notify_cancel()  # from now on nobody can cancel() it: stop() ends a run
        self._thread.start()
        return self

    # -- the run's thread ----------------------------------------------------------------
    def _sampled(self) -> list[ClientInfo]:
        """The clients this round trains: all connected ones, or the settings' sample of them,
        drawn from a generator seeded by the sampling seed and the round's number within
        this run (so a replayed run picks the same, and runs compared on one controller train
        the same clients in the same rounds), once per round (a workflow that asks twice
        asks the same). The round's quorum is at most the sample's size; the picks go in its
        record."""
        if self.settings.sample is None:
            return self._host.registry.live()
        live = sorted(self._host.registry.live(), key=lambda c: c.name)  # the picks depend on names, not join order
        record = self._record
        if record is not None and record.sampled:  # this round's second ask: the same clients
            return [c for c in live if c.name in record.sampled]
        size = self.settings.sample_size(len(live))
        rng = np.random.default_rng([self.settings.sample_seed, self.round])
        picked = [live[i] for i in sorted(rng.choice(len(live), size, replace=False))]
        self.min_results = min(self.settings.quorum, size)
        if record is not None:
            record.sampled, record.sample_seed = [c.name for c in picked], self.settings.sample_seed
        return picked

    def _main(self) -> None:
        try:
            for _ in range(self.rounds):
                if len(self.live_clients()) < self.min_clients:  # not there yet, or some left: wait for them
                    self._wait_for_clients()
                if self._stop.is_set():
                    break
                record = self._round()
                if self._on_round is not None:
                    self._on_round(record)
                if record.status in (RoundStatus.STOPPED, RoundStatus.INTERRUPTED):
                    break
        except BaseException as exc:  # the waiter raises it: nothing ends this thread unseen
            failure: BaseException | None = exc
        else:
            failure = None
        release_memory()  # what the rounds freed in the threads' heaps goes back before the waiter wakes
        if failure is not None:
            self._future.set_exception(failure)
        else:
            self._future.set_result(list(self.history))

    def _wait_for_clients(self) -> None:
        def cancelled() -> None:
            self._host.check_alive()
            if self._stop.is_set():
                raise RoundStopped()

        try:
            self._host.registry.wait_for(self.min_clients, self.join_timeout, self._host.endpoint, cancelled)
        except RoundStopped:
            pass  # stopped before a round began: the loop ends the run

    def _round(self) -> RoundRecord:
        host = self._host
        host.check_alive()
        number = len(host.history) + 1
        record = RoundRecord(number, self.workflow.name)
        self.round = len(self.history) + 1
        while not self._inbox.empty():  # leftovers of an earlier round
            self._inbox.get_nowait()
        self._record = record
        started = time.perf_counter()
        traffic_before = host.io.traffic()
        try:
            candidate = self.workflow.round(self, host.weights, number)
            if (bad := first_not_finite(candidate)) is not None:  # e.g. finite updates whose sum overflowed
                raise RoundFailed(
                    f"the aggregate is not finite (NaN or Inf in {bad}); the global model stays round {number - 1}'s"
                )
            host.adopt(candidate)
        except RoundStopped:
            record.status, record.reason = self._stop_status, f"{self._stop_status.value} by the user"
            log.warning(
                "round %d %s; clients told to abort, global model is round %d's", number, record.status, number - 1
            )
        except RoundFailed as exc:
            record.status, record.reason = RoundStatus.FAILED, str(exc)
            log.warning("round %d failed, global model unchanged: %s", number, exc)
        finally:
            self._record = None
            self._count_traffic(record, traffic_before)
        # evaluation, statistics and other workflows that leave the model alone are not rated
        if record.ok and self.evaluate is not None and self.workflow.trains:
            measured = self.evaluate(host.weights)
            record.metrics = finite_metrics(measured)
            dropped = {str(k)[:64]: repr(v)[:40] for k, v in measured.items() if k not in record.metrics}
            if dropped:  # e.g. a NaN loss: kept out of the history and the next task's header, but shown
                record.notes["metrics_dropped"] = dropped
                log.warning(
                    "round %d: evaluate's metrics %s not recorded: not finite numbers (or past %d)",
                    number,
                    dropped,
                    MAX_METRICS,
                )
        record.seconds = time.perf_counter() - started
        self.history.append(record)
        host.history.append(record)
        host.round_done(self.workflow, record)
        if self._scalars is not None:
            try:
                self._scalars.write(record)
            except OSError as exc:  # a full disk loses the log, not the round
                log.warning("round %d: TensorBoard scalars not written to %s: %s", number, self._scalars.path, exc)
        log.info("round %d %s in %.2f s %s", number, record.status, record.seconds, record.metrics)
        return record

    def _count_traffic(self, record: RoundRecord, before: Mapping[bytes, tuple[int, int]]) -> None:
        """What crossed the network this round: each client's in the client table, the total in
        the record (a number per client per round would make the history grow with the clients)."""
        registry, total_sent, total_received = self._host.registry, 0, 0
        for peer, (sent, received) in self._host.io.traffic().items():
            was = before.get(peer, (0, 0))
            moved = (sent - was[0], received - was[1])
            if moved != (0, 0):
                registry.update(peer, traffic=moved)
                total_sent, total_received = total_sent + moved[0], total_received + moved[1]
        record.traffic = (total_sent, total_received)

    def _halt(self, status: RoundStatus) -> None:
        if not self._stop.is_set() and not self.done():
            self._stop_status = status
            self._stop.set()
            self._host.registry.wake()
            self._inbox.put(("stop", b"", None))  # wakes a round gathering results: the abort goes out now

    def _progress(self, answered: int, asked: int) -> None:
        self.progress = (answered, asked)
        if self._on_progress is not None:
            self._on_progress(answered, asked)

    def _record_result(self, client: ClientInfo, result: Result, number: int) -> None:
        metrics = result.metrics
        self._host.registry.record_result(client.peer, number, result.seconds, metrics)
        if self._record is None:
            return
        self._record.clients[client.name] = {
            **metrics,
            "seconds": result.seconds,
        }  # measured here: a metric cannot override it
        applied = result.meta.get(names.FILTERS)
        if isinstance(applied, list) and applied:  # what this site says its update went through
            self._record.filters[client.name] = applied
            ledger = self._host.privacy
            ledger.record(client.name, applied)
            spent = ledger.epsilons()
            self._record.privacy = {
                "epsilon": max(spent.values(), default=0.0),
                "delta": ledger.delta,
                "clients": spent,
            }

    def _fail(self, name: str, reason: str) -> None:
        log.error("client %s: %s", name, reason)
        if self._record is not None:
            self._record.failed[name] = reason
