"""Many logical clients per process (issue 22, point 2), over real sockets on 127.0.0.1:
a thousand clients hosted 250 to a process each join as a client of its own, rounds
sample from them, and killing one host loses exactly its clients."""

import contextlib
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import nbfl
from nbfl.participant.builtin import digits_model, digits_setups
from nbfl.participant.command import main as client_main
from nbfl.participant.host import Host
from nbfl.protocol.joining import Share
from nbfl.transport.threads import BindError

from helpers import until

# the default beats (1 s, lost after 6 s): a thousand clients' threads on two busy cores
# must not be called lost for a late beat
STEADY = {"heartbeat_interval": 1.0, "heartbeat_timeout": 6.0}


@contextlib.contextmanager
def hosted(controller_factory, n: int, per_process: int):
    """A controller with ``n`` synthetic-data clients joined, ``per_process`` to a spawned
    process: ``(controller, processes)``; the processes are killed at the end."""
    weights, evaluate = digits_model(0, "numpy", "synthetic")
    ctl = controller_factory(weights, evaluate=evaluate, **STEADY)
    procs = nbfl.spawn_clients(
        ctl, n, per_process=per_process, data="synthetic", partition="iid", epochs=1, template=False
    )
    try:
        ctl.wait_for_clients(n, timeout=600)
        yield ctl, procs
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def thousand(controller_factory):
    with hosted(controller_factory, 1000, per_process=250) as (ctl, hosts):
        yield ctl, hosts


def test_a_thousand_clients_in_four_processes_train_sampled_rounds_and_a_killed_host_loses_only_its_own(thousand):
    ctl, hosts = thousand
    names = {c.name for c in ctl.live_clients()}
    assert names == {f"site-{i}" for i in range(1, 1001)}  # each its own entry at the controller
    assert len(hosts) == 4  # processes, each hosting 250 of them

    records = ctl.run(3, sample=10, sample_seed=1)
    for record in records:
        assert record.ok and len(record.sampled) == 10 and sorted(record.clients) == record.sampled
    assert records[-1].metrics["accuracy"] > 0.1  # a model was evaluated (ten classes: chance is 0.1)

    doomed = hosts[0]
    gone = {f"site-{i}" for i in range(1, 251)}  # the first process hosts the first 250
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    until(lambda: {c.name for c in ctl.live_clients()} == names - gone, timeout=120)

    later = ctl.run(3, sample=10, sample_seed=2)
    for record in later:
        assert record.ok and len(record.sampled) == 10 and not set(record.sampled) & gone
        assert sorted(record.clients) == record.sampled and not record.failed


def test_a_host_in_this_process_keeps_each_clients_share_and_state(controller_factory):
    """The Python API: a Host's clients have their own shares, and SCAFFOLD's per-client
    control variates stay apart though the clients share one runner."""
    weights, evaluate = digits_model(0, "numpy", "synthetic")
    ctl = controller_factory(weights, evaluate=evaluate, **STEADY)
    shares = [Share(i, 6, "classes:2", 3) for i in range(6)]
    made = digits_setups(shares, epochs=1, trainer="numpy", data="synthetic")
    host = Host(
        ctl.endpoint,
        [f"sim-{i}" for i in range(6)],
        lambda i: {
            "executor": made[i].executor,
            "samples": made[i].samples,
            "labels": made[i].labels,
            "share": shares[i],
        },
        **STEADY,
    )
    try:
        host.start(wait=60)
        assert len(host.joined) == 6
        listed = {c.name: c for c in ctl.clients}
        for i, setup in enumerate(made):
            assert listed[f"sim-{i}"].labels == setup.labels and sum(1 for n in setup.labels if n) == 2
        records = ctl.run(2, nbfl.make_workflow("scaffold"))
        assert all(r.ok and len(r.clients) == 6 for r in records)
        variates = [s.executor.scaffold.c_local for s in made]
        assert all(v for v in variates)
        first = next(iter(variates[0]))
        assert not all(np.array_equal(variates[0][first], v[first]) for v in variates[1:])  # each its own
    finally:
        host.stop()
    assert all(c.state == "stopped" for c in host.clients)


def test_the_command_line_refuses_a_host_it_cannot_make(capsys):
    endpoint = "tcp://127.0.0.1:5555"
    cases = {
        ("--clients", "5", "--index", "8", "--num-clients", "10"): "run past --num-clients 10",
        ("--clients", "5"): "needs ENDPOINT and --name",
    }
    for extra, said in cases.items():
        with pytest.raises(SystemExit):
            client_main([endpoint, *extra] if "--name" in said else [endpoint, "--name", "s", *extra])
        assert said in capsys.readouterr().err
    with pytest.raises(ValueError, match="not with a join line"):
        nbfl.spawn_clients("nbfl://127.0.0.1:5555/" + "A" * 40 + "/tok", 4, per_process=2)


def test_nbfl_client_hosts_clients_named_from_a_stem(controller_factory):
    """``nbfl client ENDPOINT --name stem --clients 3 --index 2 --num-clients 10``."""
    weights, evaluate = digits_model(0, "numpy", "synthetic")
    ctl = controller_factory(weights, evaluate=evaluate, **STEADY)
    cmd = [
        sys.executable,
        "-m",
        "nbfl.participant",
        ctl.endpoint,
        "--name",
        "lab",
        "--clients",
        "3",
        "--index",
        "2",
        "--num-clients",
        "10",
        "--data",
        "synthetic",
        "--trainer",
        "numpy",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ctl.wait_for_clients(3, timeout=120)
        assert sorted(c.name for c in ctl.live_clients()) == ["lab-3", "lab-4", "lab-5"]
        assert {c.share for c in ctl.clients} == {"3/10", "4/10", "5/10"}
        [record] = ctl.run(1)
        assert record.ok and len(record.clients) == 3
        ctl.close()  # the bye ends the process
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "3 of 3 clients joined" in out and "3 clients left; 3 tasks done" in out


def test_removing_a_hosted_client_leaves_its_hosts_others_connected(controller_factory):
    """Hosted clients share their host's connection: removing one must not close it."""
    ctl = controller_factory({"w": np.zeros(3, np.float32)}, **STEADY)
    host = Host(
        ctl.endpoint, ["a", "b", "c"], lambda i: {"tasks": {"train": lambda w: nbfl.Update(w, num_samples=1)}}, **STEADY
    )
    try:
        host.start(wait=60)
        ctl.remove("b")
        until(lambda: host.clients[1].state == "stopped")
        assert "removed" in host.clients[1].last_error
        [record] = ctl.run(1)
        assert record.ok and sorted(record.clients) == ["a", "c"]
        assert sorted(c.name for c in ctl.live_clients()) == ["a", "c"]
    finally:
        host.stop()


def test_a_host_beats_once_for_all_its_clients_and_they_stay_alive(controller_factory):
    """One heartbeat a beat for a host's clients: after three heartbeat timeouts of idling,
    all five are live at the controller, though four of them sent nothing since joining."""
    import time

    fast = {"heartbeat_interval": 0.1, "heartbeat_timeout": 1.0}
    ctl = controller_factory({"w": np.zeros(3, np.float32)}, **fast)
    host = Host(ctl.endpoint, [f"h{i}" for i in range(5)], lambda i: {"tasks": {}}, **fast)
    try:
        host.start(wait=60)
        received = lambda: {c.name: n for c in ctl.clients for p, (_, n) in ctl.io.traffic().items() if p == c.peer}  # noqa: E731
        before = received()
        time.sleep(3.0)  # three timeouts: a client that did not count as beating would be lost by now
        after = received()
        assert sorted(c.name for c in ctl.live_clients()) == [f"h{i}" for i in range(5)]
        beating = [name for name in after if after[name] > before[name]]
        assert len(beating) == 1, (before, after)  # one client's link carries the host's beats
    finally:
        host.stop()


def test_a_hosts_clients_all_join_again_when_the_controller_comes_back(controller_factory):
    """The controller stops without a goodbye (a crash) and a new one listens on its port:
    the host's connection reconnects, its one beat is told "not joined", and every one of
    its clients joins again, not only the one whose link carried the beat."""
    fast = {"heartbeat_interval": 0.1, "heartbeat_timeout": 2.0}
    first = controller_factory({"w": np.zeros(3, np.float32)}, **fast)
    names = [f"r{i}" for i in range(6)]
    host = Host(first.endpoint, names, lambda i: {"tasks": {"train": lambda w: nbfl.Update(w, num_samples=1)}}, **fast)
    second: list[nbfl.Controller] = []

    def listening() -> bool:  # ZeroMQ frees the port a moment after the socket closes
        try:
            second.append(nbfl.Controller(first.endpoint, {"w": np.ones(3, np.float32)}, **fast))
        except BindError:
            return False
        return True

    try:
        host.start(wait=60)
        first.io.stop()  # gone without a bye: its socket closes, and its port is free soon after
        until(listening, timeout=60)
        [again] = second
        again.wait_for_clients(6, timeout=120)
        assert sorted(c.name for c in again.live_clients()) == names
        [record] = again.run(1, min_clients=6)
        assert record.ok and sorted(record.clients) == names
    finally:
        host.stop()
        for controller in second:
            controller.close()


def test_a_client_that_leaves_before_its_welcome_is_told_goodbye_for(controller_factory):
    """A hosted client that gave up waiting (its link gone) is welcomed late: the host answers
    with a bye in its name, so the controller does not keep it, alive by its siblings' beats."""
    from nbfl.protocol import wire
    from nbfl.transport.threads import SharedConnection

    ctl = controller_factory({"w": np.zeros(3, np.float32)}, **STEADY)
    shared = SharedConnection(ctl.endpoint, **STEADY)
    shared.start()
    heard: list = []
    try:
        stays = shared.link(b"1", lambda kind, peer, msg: heard.append(msg))
        stays.send(wire.message("join", name="stays"))
        until(lambda: any(getattr(m, "kind", None) == "welcome" for m in heard))
        leaves = shared.link(b"2", lambda *event: None)
        leaves.stop()  # before its join is even sent: the controller will welcome a client that is gone
        shared.send_frames([b"\x012", *wire.encode(wire.message("join", name="leaves"))])
        until(
            lambda: "leaves" in {c.name for c in ctl.clients} and "leaves" not in {c.name for c in ctl.live_clients()}
        )
        assert [c.name for c in ctl.live_clients()] == ["stays"]
    finally:
        shared.stop()


def test_a_process_hosts_at_most_max_clients():
    from nbfl.participant.host import MAX_CLIENTS

    with pytest.raises(ValueError, match=f"1 to {MAX_CLIENTS} clients"):
        nbfl.spawn_clients("tcp://127.0.0.1:5555", 2 * MAX_CLIENTS + 2, per_process=MAX_CLIENTS + 1)
    with pytest.raises(ValueError, match=f"1 to {MAX_CLIENTS} clients"):
        Host("tcp://127.0.0.1:5555", [f"c{i}" for i in range(MAX_CLIENTS + 1)], lambda i: {})


def test_the_last_process_may_host_a_single_client(controller_factory):
    """Three clients two to a process: the second process hosts one, named by its names file."""
    with hosted(controller_factory, 3, per_process=2) as (ctl, procs):
        assert len(procs) == 2 and sorted(c.name for c in ctl.live_clients()) == ["site-1", "site-2", "site-3"]
