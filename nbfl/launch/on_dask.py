"""Clients on a Dask cluster: more sites than one machine holds, placed by Dask.

nbfl grows no launcher for clusters. Dask already starts workers on laptops, HPC queues
(dask-jobqueue: Slurm, PBS, SGE, LSF), Kubernetes and clouds; :func:`spawn_on_dask`
runs nbfl clients there as long-running tasks, each of which joins the controller like
any other client (over ZeroMQ, with the workshop's join code where the workers are not
on the controller's machine) and trains on its share of the data, chosen by its index
as ``%fl_spawn``'s clients are.

A task leaves Dask's thread pool at once (``secede``: Dask's way for tasks that run for
the whole session), then serves rounds until the controller says goodbye or
:meth:`DaskClients.release` asks it to leave. A worker that dies takes its clients with
it: the controller lists them as lost and rounds go on with the others. Dask would run
a dead worker's tasks again elsewhere; these ones see that they ran before and end at
once, so a site never trains twice under one name. ``distributed`` is an optional extra
(``pip install "nbfl-jupyter[dask]"``).

With ``per_process=K`` each task hosts K clients (:class:`~nbfl.participant.host.Host`): a
thousand simulated clients are a few tasks, not a thousand, each client still its own
at the controller.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from ..participant.host import MAX_CLIENTS
from ..protocol.joining import is_join_code

POLL = 1.0  # seconds between a client task's looks at its group's stop event


@dataclass
class DaskClients:
    """The clients :func:`spawn_on_dask` placed: their Dask futures and which worker holds which."""

    dask: Any  # the distributed.Client
    futures: list[Any]  # one a task
    tasks: list[list[str]]  # the clients each task hosts, in the order of futures
    placement: dict[str, str]  # client name -> worker address
    group: str  # names the group's Dask events
    owns_dask: bool = False  # made from an address here: closed by release()
    ended: dict[str, str] = field(default_factory=dict, init=False)  # after release(): how each client's task ended

    def release(self, timeout: float = 30.0) -> dict[str, str]:
        """Ask every client to leave and wait for its task to end (a task still waiting for a
        worker that died is cancelled); the workers are free for other work afterwards.
        Returns, and keeps in :attr:`ended`, how each client's task ended."""
        if self.ended:
            return self.ended
        from distributed import Event, wait

        Event(f"nbfl-{self.group}-stop", client=self.dask).set()
        alive = set(self.dask.scheduler_info()["workers"])
        orphans = [f for f, names in zip(self.futures, self.tasks) if self.placement[names[0]] not in alive]
        self.dask.cancel(orphans)  # a dead worker's task would wait for that worker for ever
        try:
            wait([f for f in self.futures if f not in orphans], timeout=timeout)
        except TimeoutError:
            pass
        self.dask.cancel([f for f in self.futures if not f.done()])
        for names, future in zip(self.tasks, self.futures):
            finished = future.status == "finished"
            self.ended.update(future.result() if finished else {n: f"{n}: {future.status}" for n in names})
        if self.owns_dask:
            self.dask.close()
        return self.ended


def spawn_on_dask(
    client_or_address: Any,
    n: int,
    *,
    endpoint: str,
    partition: str = "dirichlet:0.5",
    seed: int = 0,
    epochs: int = 1,
    name_prefix: str = "site",
    per_worker: int | None = None,
    device: str | None = None,
    resources: dict[str, float] | None = None,
    accept_code: bool = False,
    per_process: int = 1,
    data: str = "digits",
) -> DaskClients:
    """Start ``n`` nbfl clients on the workers of a Dask cluster; they join ``endpoint``.

    ``client_or_address`` is a ``distributed.Client`` or a scheduler's address.
    ``endpoint`` is the controller's address, or a workshop's join code for workers on
    other machines (plaintext is refused off loopback, as everywhere in nbfl). Client
    ``i`` (named ``{name_prefix}-{i+1}``) trains on share ``i`` of ``n`` of the digits
    (``partition``, ``seed``, ``epochs`` and ``data`` as ``%fl_spawn``); a workshop's controller
    assigns shares itself. Each task hosts ``per_process`` clients. Tasks go round-robin
    over the workers, or ``per_worker`` clients to a worker in turn. ``device`` (``"cuda"``, ``"cuda:1"``) and Dask ``resources`` (``{"GPU": 1}`` for
    workers started with ``--resources GPU=1``) place them on GPUs.
    """
    from distributed import Client as DaskClient

    owns = not isinstance(client_or_address, DaskClient)
    dask = DaskClient(client_or_address) if owns else client_or_address
    workers = sorted(dask.scheduler_info()["workers"])
    if not workers:
        raise RuntimeError(f"the Dask cluster at {dask.scheduler.address} has no workers")
    if per_worker is not None and per_worker * len(workers) < n:
        raise ValueError(f"{n} clients do not fit {per_worker} to a worker on {len(workers)} workers")
    if not 1 <= per_process <= MAX_CLIENTS or (per_worker is not None and per_worker % per_process):
        raise ValueError(f"per_process takes 1 to {MAX_CLIENTS} clients and divides per_worker, not {per_process}")
    if per_process > 1 and is_join_code(endpoint):
        raise ValueError("simulated clients (per_process > 1) train on shares given here: not with a join line")
    group = uuid.uuid4().hex[:12]
    futures, tasks, placement = [], [], {}
    for k, i in enumerate(range(0, n, per_process)):  # task k hosts clients i, i + 1, ...
        names = [f"{name_prefix}-{j + 1}" for j in range(i, min(n, i + per_process))]
        worker = workers[i // per_worker if per_worker else k % len(workers)]
        placement.update(dict.fromkeys(names, worker))
        tasks.append(names)
        futures.append(
            dask.submit(
                run_clients,
                endpoint,
                names,
                i,
                n,
                partition,
                seed,
                epochs,
                device,
                accept_code,
                group,
                data,
                key=f"nbfl-client-{group}-{i}",
                workers=[worker],
                allow_other_workers=False,
                resources=resources,
                pure=False,
            )
        )
    return DaskClients(dask, futures, tasks, placement, group, owns)


def run_clients(
    endpoint: str,
    names: list[str],
    first: int,
    of: int,
    partition: str,
    seed: int,
    epochs: int,
    device: str | None,
    accept_code: bool,
    group: str,
    data: str,
) -> dict[str, str]:
    """The life of one task's clients on a worker: join, serve rounds, leave; what ended each."""
    from distributed import Event, secede

    from ..participant.builtin import built_in_client, built_in_clients
    from ..participant.client import Client
    from ..participant.host import Host
    from ..protocol.joining import Share

    secede()  # a long-running task: its thread leaves the worker's pool
    started = Event(f"nbfl-{group}-{names[0]}-started")
    if started.is_set():  # Dask runs a dead worker's tasks again: these sites' process died with it
        return {name: f"{name} ran on a worker that died; not started again" for name in names}
    started.set()
    stop = Event(f"nbfl-{group}-stop")

    party: Client | Host
    if len(names) == 1:  # a client of its own: it may join with a workshop's line, which assigns its share
        share = None if is_join_code(endpoint) else Share(first, of, partition, seed)
        # one thread: several clients may share a worker's cores
        local = built_in_client(share, epochs, device, single_thread=True, data=data)
        party = Client(endpoint, names[0], accept_code=accept_code, **local).start(wait=300)
    else:
        shares = [Share(first + j, of, partition, seed) for j in range(len(names))]
        hosted = built_in_clients(shares, epochs, device, single_thread=True, data=data)
        party = Host(endpoint, names, hosted.__getitem__, accept_code=accept_code).start(wait=300)
    while not party.wait(POLL):
        if stop.is_set():
            party.stop()
    ended = party.clients if isinstance(party, Host) else [party]
    return {c.name: f"{c.name} left: {c.last_error or 'asked to'}" for c in ended}
