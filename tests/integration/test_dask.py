"""Clients on a Dask cluster (nbfl.launch.on_dask): a real distributed.LocalCluster of worker
processes, nbfl clients placed on it through the call a user makes, a worker killed."""

import os
import signal
import time

import pytest
import torch

import nbfl
import nbfl.launch.on_dask
from nbfl.data import load_digits_split
from nbfl.participant.models import DigitsMLP
from nbfl.participant.trainers import evaluator

distributed = pytest.importorskip("distributed")


def test_six_clients_on_three_workers_train_and_a_dead_workers_clients_are_lost():
    torch.manual_seed(0)
    model = DigitsMLP()
    _, _, x_test, y_test = load_digits_split()
    cluster = distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None)
    dask = distributed.Client(cluster)
    ctl = nbfl.Controller("tcp://127.0.0.1:0", model, evaluate=evaluator(model, x_test, y_test), heartbeat_timeout=3.0)
    try:
        sites = nbfl.launch.on_dask.spawn_on_dask(dask, 6, endpoint=ctl.endpoint, per_worker=2, partition="iid")
        ctl.wait_for_clients(6, timeout=300)
        by_worker: dict[str, list[str]] = {}
        for name, worker in sites.placement.items():
            by_worker.setdefault(worker, []).append(name)
        assert sorted(len(names) for names in by_worker.values()) == [2, 2, 2]

        records = ctl.run(3, min_clients=6)
        assert all(r.ok and len(r.clients) == 6 for r in records), [r.outcome for r in records]
        assert records[-1].metrics["accuracy"] > records[0].metrics["accuracy"]
        assert {c.name: c.samples for c in ctl.clients} and all(c.samples > 0 for c in ctl.clients)

        # kill one worker process outright, as a node of a cluster dies
        victim = next(iter(by_worker))
        nanny = next(n for n in cluster.workers.values() if n.worker_address == victim)
        os.kill(nanny.process.process.pid, signal.SIGKILL)
        gone = sorted(by_worker[victim])
        deadline = time.monotonic() + 120
        while sorted(c.name for c in ctl.clients if c.state == "lost") != gone:
            assert time.monotonic() < deadline, [(c.name, c.state) for c in ctl.clients]
            time.sleep(0.1)
        (after,) = ctl.run(1, min_clients=4)
        assert after.ok and sorted(after.clients) == sorted(set(sites.placement) - set(gone))
        time.sleep(2)  # Dask has restarted the worker by now; the dead sites' tasks do not come back
        assert sorted(c.name for c in ctl.clients if c.live) == sorted(after.clients)

        ended = sites.release()
        assert all(f.done() for f in sites.futures)
        assert sorted(n for n, text in ended.items() if text.startswith(f"{n} left")) == sorted(after.clients), ended
        assert all(ended[n] == f"{n}: cancelled" for n in gone), ended
        deadline = time.monotonic() + 60
        while any(c.live for c in ctl.clients):  # they said goodbye
            assert time.monotonic() < deadline, [(c.name, c.state) for c in ctl.clients]
            time.sleep(0.1)
    finally:
        ctl.close()
        dask.close()
        cluster.close()


def test_fl_spawn_dask_from_the_notebook_and_the_controller_stop_releases_the_workers():
    from IPython.testing.globalipapp import start_ipython

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    shell = start_ipython()
    shell.run_line_magic("load_ext", "nbfl")
    try:
        shell.run_line_magic("fl_controller", "start")
        shell.run_line_magic("fl_spawn", f"4 --dask {cluster.scheduler_address} --per-worker 2 --partition iid")
        ctl = shell.user_ns["nbfl_controller"]
        assert sorted(c.name for c in ctl.live_clients()) == ["site-1", "site-2", "site-3", "site-4"]
        shell.run_line_magic("fl_round", "2")
        assert [r.ok and len(r.clients) for r in ctl.history] == [4, 4]
        (group,) = shell.find_magic("fl_spawn").__self__.session.on_dask
        shell.run_line_magic("fl_controller", "stop")
        assert sorted(group.ended) == ["site-1", "site-2", "site-3", "site-4"]
        assert all(text.startswith(f"{name} left") for name, text in group.ended.items()), group.ended  # tasks ended
        assert group.dask.status == "closed"  # the magic's own connection to the scheduler
    finally:
        shell.run_line_magic("unload_ext", "nbfl")
        cluster.close()


def test_the_demo_runs_its_clients_on_a_dask_cluster():
    import subprocess
    import sys

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "nbfl",
                "demo",
                "--clients",
                "3",
                "--rounds",
                "2",
                "--dask",
                cluster.scheduler_address,
            ],
            capture_output=True,
            text=True,
            timeout=280,
        )
        out = done.stdout
        assert done.returncode == 0, out + done.stderr[-2000:]
        assert f"3 clients on the Dask cluster at {cluster.scheduler_address}" in out
        joined = next(line for line in out.splitlines() if line.startswith("3 clients joined: "))
        assert sorted(joined.removeprefix("3 clients joined: ").split(", ")) == ["site-1", "site-2", "site-3"]
        assert "2 rounds completed; final accuracy" in out
        with distributed.Client(cluster) as dask:  # the demo's clients left with its controller: the workers are idle
            assert all(not tasks for tasks in dask.processing().values())
    finally:
        cluster.close()


def test_hosts_on_dask_put_many_clients_in_a_task_each_its_own_at_the_controller():
    """spawn_on_dask(..., per_process=10): 40 simulated clients as four Dask tasks on two
    workers; a sampled round trains 5 of them; release() says how each of the 40 ended."""
    from nbfl.participant.builtin import digits_model

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    dask = distributed.Client(cluster)
    weights, evaluate = digits_model(0, "numpy", "synthetic")
    ctl = nbfl.Controller("tcp://127.0.0.1:0", weights, evaluate=evaluate)
    try:
        ctl.expect_joins(40)
        sites = nbfl.launch.on_dask.spawn_on_dask(
            dask, 40, endpoint=ctl.endpoint, per_process=10, per_worker=20, data="synthetic", partition="iid"
        )
        assert len(sites.futures) == 4 and [len(t) for t in sites.tasks] == [10] * 4
        assert len(set(sites.placement.values())) == 2
        ctl.wait_for_clients(40, timeout=300)
        assert sorted(c.name for c in ctl.live_clients()) == sorted(f"site-{i}" for i in range(1, 41))
        records = ctl.run(2, sample=5)
        assert all(r.ok and len(r.clients) == 5 for r in records), [r.outcome for r in records]
        ended = sites.release()
        assert sorted(ended) == sorted(sites.placement)
        assert all(text.startswith(f"{name} left") for name, text in ended.items()), ended
    finally:
        ctl.close()
        dask.close()
        cluster.close()
