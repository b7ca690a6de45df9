"""A run is its own object: started in the background, watched, stopped, waited for,
and told at once when the controller's IO thread is gone. Real sockets on 127.0.0.1."""

import json
import threading

import numpy as np
import pytest

import nbfl
from nbfl.protocol import wire
from nbfl.protocol.records import RoundStatus

from helpers import adder, small_model, until


def gated():
    """A train task that waits for ``gate`` (or an abort) before answering; ``started`` lists the rounds it began."""
    started, gate, aborted = [], threading.Event(), threading.Event()

    def train(weights, ctx):
        started.append(ctx.round)
        while not gate.is_set():
            if ctx.abort.wait(0.02):
                aborted.set()
                return weights
        gate.clear()
        return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=1)

    return {"train": train}, started, gate, aborted


def test_start_returns_at_once_and_the_handle_follows_the_run(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    tasks, started, gate, _ = gated()
    client_factory(ctl.endpoint, "a", tasks=tasks)
    seen, ended = [], []
    run = ctl.start(3, timeout=60, on_round=seen.append)
    run.add_done_callback(ended.append)
    until(lambda: started)
    assert not run.done() and run.round == 1 and run.history == []
    assert "running: round 1 of 3" in run.summary()
    assert ctl.active_run is run
    for expected in (1, 2, 3):
        gate.set()
        until(lambda: len(run.history) >= expected)
    records = run.wait(timeout=60)
    assert [r.status for r in records] == ["ok"] * 3 and records == run.history == run.result() == seen
    assert run.done() and run.exception() is None and ended == [run] and ctl.active_run is None
    assert run.summary() == "finished 3 of 3 rounds"
    np.testing.assert_allclose(ctl.weights["w"], small_model()["w"] + 3)


def test_stop_aborts_the_round_and_keeps_the_last_complete_model(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    tasks, started, gate, aborted = gated()
    client_factory(ctl.endpoint, "a", tasks=tasks)
    run = ctl.start(200, timeout=60)
    gate.set()  # round 1 completes
    until(lambda: started == [1, 2])  # round 2 is training
    run.stop()
    records = run.wait(timeout=30)
    assert [r.status for r in records] == [RoundStatus.OK, RoundStatus.STOPPED] and run.stopped
    assert aborted.wait(10), "the client was not told to abort"
    until(lambda: ctl.clients[0].aborted_at is not None)  # and it said it stopped
    assert run.summary() == "stopped after 1 of 200 rounds"
    np.testing.assert_allclose(ctl.weights["w"], small_model()["w"] + 1)  # round 1's model
    assert {c.state for c in ctl.clients} == {"idle"}  # the table shows no one still training
    gate.set()
    assert ctl.run(1, timeout=30)[0].ok  # and the next run works


def test_detach_lets_a_waiting_cell_end_while_the_run_goes_on(controller_factory, client_factory):
    """The Federation panel's Detach, through the controller's control socket: a cell
    waiting on the run (as a blocking %fl_round does) returns, the run goes on, the panel
    stops offering Detach; with no cell waiting, Detach is refused with a reason."""
    from nbfl.notebook.waiting import wait_blocking
    from nbfl.transport import control

    ctl = controller_factory(small_model())
    tasks, started, gate, _ = gated()
    client_factory(ctl.endpoint, "a", tasks=tasks)
    run = ctl.start(3, timeout=60)
    run.view_hint = "%fl_status shows it."
    cell = threading.Thread(target=wait_blocking, args=(run, True))
    cell.start()
    until(lambda: run.held)
    entry = json.loads(ctl.control.path.read_text())  # what the Jupyter server reads to reach it
    status = control.request(entry, "status")["run"]
    assert (
        status["held"]
        and status["view"].startswith("Page reloaded? A cell waits on this run")
        and "Detach" in status["view"]
    )
    assert "goes on" in control.request(entry, "detach")
    cell.join(30)
    assert not cell.is_alive() and not run.done() and not run.held
    status = control.request(entry, "status")["run"]
    assert (
        status["state"] == "running" and not status["held"] and status["view"] == "Page reloaded? %fl_status shows it."
    )
    with pytest.raises(control.ControlError, match="no notebook cell is waiting on a run"):
        control.request(entry, "detach")
    for expected in (1, 2, 3):
        gate.set()
        until(lambda: len(run.history) >= expected)
    assert [str(r.status) for r in run.wait(60)] == ["ok"] * 3  # the run went on to its end


def test_one_run_at_a_time_and_the_model_is_not_swapped_under_it(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    tasks, started, gate, _ = gated()
    client_factory(ctl.endpoint, "a", tasks=tasks)
    run = ctl.start(1, timeout=60)
    until(lambda: started)
    with pytest.raises(nbfl.controller.controller.RunActive, match="running: round 1 of 1"):
        ctl.start(1)
    with pytest.raises(nbfl.controller.controller.RunActive):
        ctl.weights = small_model(1)
    with pytest.raises(nbfl.controller.controller.RunActive):
        ctl.restart(small_model(1))
    gate.set()
    assert run.wait(30)[0].ok
    gate.set()
    assert ctl.start(1, timeout=30).wait(30)[0].ok  # free again


def test_each_run_keeps_its_own_settings(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "a", tasks=adder())
    strict = ctl.start(1, min_clients=2, join_timeout=0.5)
    with pytest.raises(TimeoutError, match="1 of 2 clients"):
        strict.wait(30)
    assert isinstance(strict.exception(), TimeoutError) and strict.summary().startswith("failed after 0 of 1")
    lenient = ctl.start(1, min_clients=1)
    assert lenient.wait(30)[0].ok and (strict.min_clients, lenient.min_clients) == (2, 1)
    assert not hasattr(ctl, "min_clients") and not hasattr(ctl, "filters")  # nothing per run on the controller


def test_a_run_whose_rounds_failed_says_so(controller_factory, client_factory):
    def broken(weights, ctx):
        raise ValueError("no data here")

    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "a", tasks={"train": broken})
    run = ctl.start(1)
    assert run.wait(30)[0].status == "failed"
    assert run.summary() == (
        "finished 1 of 1 rounds; 1 failed (round 1: 0 usable results, 1 needed: the global model "
        "is unchanged); 1 client failed in every round (a)"
    )


def test_a_client_that_fails_every_round_is_named_in_the_summary(controller_factory, client_factory):
    """Its rounds all end "ok" on the others' results, so only the summary (the dashboard's
    headline, %fl_status, the panel) says that one participant never took part."""

    def broken(weights, ctx):
        raise ValueError("no data here")

    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "a", tasks=adder())
    client_factory(ctl.endpoint, "b", tasks={"train": broken})
    run = ctl.start(2, min_clients=2, min_results=1)
    assert [str(r.status) for r in run.wait(30)] == ["ok", "ok"]
    assert run.summary() == "finished 2 of 2 rounds; 1 client failed in every round (b)"


def test_a_dead_io_thread_is_raised_by_wait_at_once(controller_factory, client_factory):
    """A bug that ends the controller's IO thread (injected here) reaches whoever waits."""
    ctl = controller_factory(small_model())
    tasks, started, _, _ = gated()
    client_factory(ctl.endpoint, "a", tasks=tasks)
    run = ctl.start(5)  # no round timeout: without the news it would wait forever
    until(lambda: started)

    def injected(now):
        raise RuntimeError("injected bug")

    ctl.io._beat = injected
    with pytest.raises(nbfl.controller.run.RunError, match="injected bug"):
        run.wait(timeout=60)  # raises long before the timeout: a TimeoutError here would fail the test
    assert not ctl.io.is_alive() and "injected bug" in run.summary()
    with pytest.raises(nbfl.controller.run.RunError, match="IO thread"):
        ctl.wait_for_clients(5, timeout=None)
    with pytest.raises(nbfl.controller.run.RunError, match="IO thread"):
        ctl.start(1)


def test_a_dead_client_io_thread_stops_the_client_and_says_why(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client = client_factory(ctl.endpoint, "a", tasks=adder())

    def injected(now):
        raise RuntimeError("injected bug")

    client._io._beat = injected
    assert client.wait(30), "the client did not notice its IO thread was gone"
    assert client.state == "stopped" and "injected bug" in client.last_error


def test_a_workflow_must_keep_the_contract(controller_factory):
    ctl = controller_factory(small_model())

    class Partial:  # a round, but no name and no word on whether it trains
        def round(self, run, weights, number):
            return weights

    with pytest.raises(TypeError, match="not a workflow: it needs name, trains and round"):
        ctl.start(1, Partial())
    assert ctl.active_run is None


def test_a_run_is_the_controllers_before_its_first_round(controller_factory, client_factory):
    """A run's first results can come back before start() returns: the IO thread forwards
    them only to the controller's run, so the run must be that before its thread begins
    (it once began first, and a loaded CI machine lost a result and hung)."""
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "a", tasks=adder())
    seen = []

    class Probe(nbfl.workflows.FedAvg):
        def round(self, run, weights, number):
            seen.append(ctl.active_run is run)
            return super().round(run, weights, number)

    for _ in range(20):
        assert ctl.run(1, Probe(), timeout=10)[0].ok
    assert seen == [True] * 20


def test_a_round_closes_a_grace_period_after_its_quorum_and_drops_late_results(
    controller_factory, client_factory, caplog
):
    ctl = controller_factory(small_model())
    in_round_2, release = threading.Event(), threading.Event()

    def slow(weights, ctx):  # a straggler: round 1 until it is told to stop, round 2 until released
        if ctx.round == 1:
            ctx.abort.wait(60)
        else:
            in_round_2.set()
            release.wait(60)
        return weights

    def fast(delta):
        def train(weights, ctx):
            if ctx.round == 2 and delta == 3.0:
                release.wait(60)  # holds round 2's quorum back while a late result comes in
            return nbfl.Update({k: v + delta for k, v in weights.items()}, num_samples=1)

        return {"train": train}

    client_factory(ctl.endpoint, "fast-1", tasks=fast(1.0))
    client_factory(ctl.endpoint, "fast-2", tasks=fast(3.0))
    straggler = client_factory(ctl.endpoint, "slow", tasks={"train": slow})
    with caplog.at_level("INFO", logger="nbfl.controller.run"):
        run = ctl.start(2, min_clients=3, min_results=2, grace=0.0, timeout=120)
        until(lambda: run.history)
        first = run.history[0]
        assert first.ok and sorted(first.clients) == ["fast-1", "fast-2"] and not first.failed
        assert first.notes["late"] == ["slow"] and first.outcome == "ok"
        np.testing.assert_allclose(ctl.weights["w"], small_model()["w"] + 2)  # the two fast ones only
        until(in_round_2.is_set)
        [closed] = run._closed_tasks  # the straggler's round-1 task; its result comes now, too late
        straggler._io.send(wire.message("result", dict(small_model()), task_id=closed, kind="WEIGHTS", meta={}))
        until(lambda: any("late result from slow dropped" in r.getMessage() for r in caplog.records))
        release.set()
        records = run.wait(120)
    assert [r.outcome for r in records] == ["ok", "ok"]
    # round 2's quorum: fast-1 and whichever of the two released together answered first; the other is late
    second = records[1]
    assert "fast-1" in second.clients and len(second.clients) >= 2
    assert set(second.clients) | set(second.notes.get("late", [])) == {"fast-1", "fast-2", "slow"}


def test_a_round_short_of_its_quorum_says_so_and_keeps_the_model(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "a", tasks=adder(1.0))
    [record] = ctl.run(1, min_clients=1, min_results=2, timeout=60)
    assert record.status == "failed" and "1 usable results, 2 needed: the global model is unchanged" in record.reason
    np.testing.assert_array_equal(ctl.weights["w"], small_model()["w"])


@pytest.mark.parametrize("task_id", [{"a": 1}, [1, 2], None, 3.5])
def test_a_result_whose_task_id_is_not_text_is_refused_and_the_round_goes_on(
    controller_factory, client_factory, task_id
):
    ctl = controller_factory(small_model())
    tasks, started, gate, _ = gated()
    client = client_factory(ctl.endpoint, "a", tasks=tasks)
    run = ctl.start(1, timeout=60)
    until(lambda: started)  # the round is gathering results
    client._io.send(wire.message("result", dict(small_model()), task_id=task_id, kind="WEIGHTS", meta={}))
    until(lambda: client.last_error is not None and "unknown task" in client.last_error)
    gate.set()
    assert run.wait(60)[0].ok
