"""Control sockets (nbfl.transport.control): what the Federation panel's server side asks a controller
and a participant, over real sockets on 127.0.0.1, while a run goes on; and what it refuses."""

import json
import os
import stat
import subprocess
import sys

import pytest
import zmq

import nbfl
from nbfl.transport import control

from helpers import FAST, adder, slow_adder, small_model, until


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path, monkeypatch):
    """A registry of this test's own: other tests' controllers are not listed."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    return tmp_path / "runtime"


def entry_of(kind="controller"):
    entries = [e for e in control.registered() if e["kind"] == kind]
    assert len(entries) == 1, entries
    return entries[0]


def test_the_panel_sees_clients_and_rounds_and_stops_a_run_while_it_goes(controller_factory, client_factory):
    ctl = controller_factory(small_model(), evaluate=lambda w: {"accuracy": float(w["b"][0])})
    for name in ("a", "b", "c"):
        client_factory(ctl.endpoint, name, tasks=slow_adder())
    ctl.wait_for_clients(3)
    run = ctl.start(rounds=100_000)  # far more than it will run
    entry = entry_of()
    until(lambda: (control.request(entry, "status")["run"] or {}).get("round", 0) >= 3)
    status = control.request(entry, "status")
    assert sorted(c["name"] for c in status["clients"]) == ["a", "b", "c"]
    assert status["run"]["state"] == "running" and status["run"]["rounds"] == 100_000
    assert status["run"]["overall"] == status["run"]["round"]  # the controller's first run
    assert status["run"]["asked"] == 3 and 0 <= status["run"]["answered"] <= 3
    accuracies = [h["metrics"]["accuracy"] for h in status["history"]]
    assert accuracies == [float(r.metrics["accuracy"]) for r in ctl.history[: len(accuracies)]]
    json.dumps(status, allow_nan=False)  # what a browser's JSON.parse accepts

    said = control.request(entry, "stop")
    assert "stopping the run" in said
    run.wait(timeout=30)
    assert run.stopped and run.round < 100_000
    assert control.request(entry, "status")["run"]["state"] == "stopped"
    with pytest.raises(control.ControlError, match="no run is going on"):
        control.request(entry, "stop")
    # the next run works as usual, and its round 1 is the controller's round after the stopped run's
    assert ctl.run(rounds=1)[0].ok
    after = control.request(entry, "status")["run"]
    assert after["round"] == 1 and after["overall"] == len(ctl.history) == ctl.history[-1].round


def test_a_request_without_the_token_is_refused_and_changes_nothing(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "a", tasks=slow_adder())
    run = ctl.start(rounds=100_000)
    entry = entry_of()
    for token in (None, "", "guess", entry["token"][:-1], entry["token"] + "x"):
        for op in ("stop", "remove", "status"):
            with pytest.raises(control.ControlError, match="refused: a control request needs this socket's token"):
                control.request({**entry, "token": token}, op, {"name": "a"})
    assert not run.done() and [c.state for c in ctl.clients if c.name == "a"] != ["removed"]
    run.stop()
    run.wait(timeout=30)


def test_it_listens_on_loopback_only_and_its_registration_is_private(controller_factory, runtime_dir):
    ctl = controller_factory(small_model())
    entry = entry_of()
    assert entry["address"].startswith("tcp://127.0.0.1:")
    assert stat.S_IMODE(os.stat(runtime_dir / "nbfl").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(ctl.control.path).st_mode) == 0o600
    ctl.close()
    assert control.registered() == [] and not list((runtime_dir / "nbfl").iterdir())


def test_bad_requests_get_an_answer_and_the_socket_lives_on(controller_factory):
    controller_factory(small_model())
    entry = entry_of()
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, 5000)
    sock.connect(entry["address"])
    token = json.dumps(entry["token"])
    bad = [
        b"\xff\xfe not utf-8",
        b"not json",
        b"[1, 2]",
        b"[" * 10_000 + b"]" * 10_000,
        b'{"token": ' + token.encode() + b', "op": "status", "args": ' + b"9" * 400 + b"}",
        b'{"token": ' + token.encode() + b', "op": "status", "args": [1]}',
        b'{"token": ' + token.encode() + b', "op": {"deep": [[[[1]]]]}}',
        b'{"token": ' + token.encode() + b', "op": "remove", "args": {"name": ["x"]}}',
        b'{"token": ' + token.encode() + b', "op": "remove", "args": {"name": "nobody"}}',
        b'{"token": 1e999, "op": "status"}',
    ]
    for raw in bad:
        sock.send(raw)
        reply = json.loads(sock.recv())
        assert reply["ok"] is False and reply["error"], raw[:60]
    sock.close()
    # more than a control request may be: ZeroMQ drops the connection, the socket stays
    big = zmq.Context.instance().socket(zmq.REQ)
    big.setsockopt(zmq.LINGER, 0)
    big.connect(entry["address"])
    big.send(b"x" * (control.MAX_REQUEST_BYTES + 1))
    assert not big.poll(500)
    big.close()
    assert control.request(entry, "status")["clients"] == []


def test_a_participant_shows_its_and_the_global_accuracy_and_leaves(controller_factory):
    ctl = controller_factory(small_model(), evaluate=lambda w: {"accuracy": 0.75})
    client = nbfl.Client(ctl.endpoint, "alice", tasks=slow_adder(0), control=True, **FAST).start()
    try:
        assert ctl.run(rounds=2)[-1].ok
        entry = entry_of("participant")
        until(lambda: control.request(entry, "status")["rounds_done"] == 2)
        status = control.request(entry, "status")
        assert status["name"] == "alice" and status["controller"] == ctl.endpoint.removeprefix("tcp://")
        assert status["local"] == {"accuracy": 0.5}
        assert status["global"] == {"accuracy": 0.75} and status["global_round"] == 1  # sent with round 2's task
        assert control.request(entry, "leave") == f"alice is leaving {status['controller']}"
        assert client.wait(timeout=10)
        until(lambda: [c.state for c in ctl.clients] == ["left"])
        assert [e["kind"] for e in control.registered()] == ["controller"]
    finally:
        client.stop()


def test_a_killed_kernels_registration_is_dropped(runtime_dir):
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import nbfl, numpy as np, os\nc = nbfl.Controller(weights={'w': np.zeros(2)})\n"
            "print(c.control.path, flush=True)\nos._exit(0)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime_dir)},
    )
    path = child.stdout.strip()
    assert path and os.path.exists(path)  # os._exit ran no atexit: as after SIGKILL
    assert control.registered() == [] and not os.path.exists(path)


def test_a_plain_client_does_not_register(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "site-1", tasks=adder())
    assert [e["kind"] for e in control.registered()] == ["controller"]


def test_a_controller_runs_on_where_it_cannot_register(
    monkeypatch, tmp_path, controller_factory, client_factory, caplog
):
    blocked = tmp_path / "read-only"
    blocked.write_text("a file where the runtime folder should be")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(blocked))
    ctl = controller_factory(small_model())
    assert "no Federation panel for this controller: cannot register in" in caplog.text
    client_factory(ctl.endpoint, "a", tasks=adder())
    assert ctl.run(rounds=1)[0].ok and ctl.control.path is None
