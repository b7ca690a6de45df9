"""Controller and clients over real ZeroMQ sockets on 127.0.0.1 (clients as threads here;
test_processes.py runs them as separate processes)."""

import logging
import os
import signal
import threading

import numpy as np
import pytest

import nbfl
from nbfl.participant.executor import DXO, Executor, ReturnCode, make_reply
from nbfl.protocol.names import DataKind, MetaKey

from helpers import small_model


def adder(delta, samples):
    def train(weights, ctx):
        return nbfl.Update({k: v + delta for k, v in weights.items()}, num_samples=samples, metrics={"loss": delta})

    return {"train": train}


def test_fedavg_rounds_weight_by_samples(controller_factory, client_factory):
    w0 = small_model()
    ctl = controller_factory(w0)
    client_factory(ctl.endpoint, "a", tasks=adder(1.0, 1), samples=1)
    client_factory(ctl.endpoint, "b", tasks=adder(4.0, 3), samples=3)
    records = ctl.run(2, min_clients=2, timeout=30)
    # each round adds (1*1 + 3*4) / 4 = 3.25
    np.testing.assert_allclose(ctl.weights["w"], w0["w"] + 6.5, rtol=1e-6)
    assert [r.status for r in records] == ["ok", "ok"]
    assert records[0].clients["b"]["loss"] == 4.0
    table = {c.name: c for c in ctl.clients}
    assert table["a"].samples == 1 and table["b"].last_round == 2 and table["a"].state == "idle"


def test_evaluate_callback_fills_history(controller_factory, client_factory):
    ctl = controller_factory(small_model(), evaluate=lambda w: {"mean": float(w["b"].mean())})
    client_factory(ctl.endpoint, "a", tasks=adder(1.0, 1))
    ctl.run(1, timeout=30)
    assert ctl.history[0].metrics["mean"] == pytest.approx(float(small_model()["b"].mean()) + 1, rel=1e-5)


class DiffTrainer(Executor):
    """A seed-style executor returning WEIGHT_DIFF with NUM_STEPS_CURRENT_ROUND."""

    def __init__(self, step, steps):
        super().__init__()
        self.step, self.steps = step, steps

    def execute(self, task_name, shareable, fl_ctx, abort_signal):
        if task_name != "train":
            return make_reply(ReturnCode.TASK_UNKNOWN)
        dxo = DXO(DataKind.WEIGHT_DIFF, {k: np.full_like(v, self.step) for k, v in shareable["DXO"]["data"].items()})
        dxo.set_meta_prop(MetaKey.NUM_STEPS_CURRENT_ROUND, self.steps)
        return dxo.to_shareable()


def test_executor_weight_diffs_weighted_by_steps(controller_factory, client_factory):
    w0 = small_model()
    ctl = controller_factory(w0)
    client_factory(ctl.endpoint, "a", DiffTrainer(1.0, 1))
    client_factory(ctl.endpoint, "b", DiffTrainer(-1.0, 3))
    ctl.run(1, min_clients=2, timeout=30)
    np.testing.assert_allclose(ctl.weights["b"], w0["b"] - 0.5, rtol=1e-6)  # (1 - 3) / 4


def test_client_exception_reaches_controller_with_name_and_traceback(controller_factory, client_factory, caplog):
    def train(weights, ctx):
        raise RuntimeError("disk full on the hospital side")

    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "good", tasks=adder(1.0, 1))
    client_factory(ctl.endpoint, "broken", tasks={"train": train})
    with caplog.at_level(logging.ERROR, logger="nbfl.controller.controller"):
        record = ctl.run(1, min_clients=1, timeout=30)[0]
    failure = record.failed["broken"]
    assert (
        "RuntimeError: disk full on the hospital side" in failure and "Traceback" in failure and "in train" in failure
    )
    assert record.status == "ok" and list(record.clients) == ["good"]
    assert any("client broken" in r.getMessage() and "disk full" in r.getMessage() for r in caplog.records)


def test_nan_update_is_rejected_and_the_client_told(controller_factory, client_factory):
    def train(weights, ctx):
        return {k: np.full_like(v, np.nan) for k, v in weights.items()}

    w0 = small_model()
    ctl = controller_factory(w0)
    client_factory(ctl.endpoint, "good", tasks=adder(2.0, 1))
    bad = client_factory(ctl.endpoint, "nan", tasks={"train": train})
    record = ctl.run(1, min_clients=1, timeout=30)[0]
    assert "NaN" in record.failed["nan"]
    np.testing.assert_allclose(ctl.weights["w"], w0["w"] + 2.0, rtol=1e-6)
    assert _eventually(lambda: bad.last_error and "NaN" in bad.last_error)


def test_wrong_shape_update_is_rejected(controller_factory, client_factory):
    def train(weights, ctx):
        return {k: np.zeros((7,), v.dtype) for k, v in weights.items()}

    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "bad", tasks={"train": train})
    record = ctl.run(1, min_clients=1, timeout=30)[0]
    assert record.status == "failed" and "shape" in record.failed["bad"]
    np.testing.assert_array_equal(ctl.weights["w"], small_model()["w"])


def test_duplicate_name_is_refused(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "same", tasks=adder(1.0, 1))
    with pytest.raises(ConnectionError, match="taken"):
        client_factory(ctl.endpoint, "same", tasks=adder(1.0, 1))


def test_interrupt_aborts_clients_and_keeps_the_model(controller_factory, client_factory):
    started, aborted = threading.Event(), threading.Event()

    def slow(weights, ctx):
        started.set()
        ctx.abort.wait()
        aborted.set()
        return weights

    w0 = small_model()
    ctl = controller_factory(w0)
    client = client_factory(ctl.endpoint, "slow", tasks={"train": slow})
    threading.Thread(target=lambda: started.wait(30) and os.kill(os.getpid(), signal.SIGINT), daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        ctl.run(1, timeout=60)
    assert aborted.wait(10), "the client was not told to abort"
    assert ctl.history[-1].status == "interrupted"
    assert ctl.weights is not None and np.array_equal(ctl.weights["w"], w0["w"])
    client.executor.tasks["train"] = adder(1.0, 1)["train"]
    assert ctl.run(1, timeout=30)[0].status == "ok"


def test_round_timeout_finishes_with_the_others(controller_factory, client_factory):
    hold = threading.Event()

    def stuck(weights, ctx):
        hold.wait(30)
        return weights

    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "ok", tasks=adder(1.0, 1))
    client_factory(ctl.endpoint, "stuck", tasks={"train": stuck})
    try:
        record = ctl.run(1, min_clients=1, timeout=5)[0]
    finally:
        hold.set()
    assert record.status == "ok" and "stuck" in record.failed and "ok" in record.clients


def _eventually(check, tries=200):
    for _ in range(tries):
        if check():
            return True
        threading.Event().wait(0.05)
    return False


def test_heartbeats_keep_last_seen_fresh_while_idle(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "idle", tasks=adder(1.0, 1))
    first = ctl.clients[0].last_seen
    assert _eventually(lambda: ctl.clients[0].last_seen > first)  # no task sent: only heartbeats
    assert ctl.clients[0].state == "idle"


def test_stop_aborts_the_round_like_an_interrupt(controller_factory, client_factory):
    started = threading.Event()

    def slow(weights, ctx):
        started.set()
        ctx.abort.wait()
        return weights

    w0 = small_model()
    ctl = controller_factory(w0)
    client = client_factory(ctl.endpoint, "slow", tasks={"train": slow})
    threading.Thread(target=lambda: started.wait(30) and ctl.stop(), daemon=True).start()
    records = ctl.run(3, timeout=60)
    assert [r.status for r in records] == ["stopped"]  # the other two rounds never started
    assert _eventually(lambda: client.state == "idle")
    np.testing.assert_array_equal(ctl.weights["w"], w0["w"])
    client.executor.tasks["train"] = adder(1.0, 1)["train"]
    assert ctl.run(1, timeout=30)[0].status == "ok"


def test_a_join_flood_is_refused_beyond_the_rate_and_the_refused_client_keeps_trying(
    controller_factory, client_factory
):
    from nbfl.transport.guard import GuardSettings

    ctl = controller_factory(small_model(), guard=GuardSettings(joins=(0.0, 2)))  # two newcomers, no refill
    client_factory(ctl.endpoint, "a")
    client_factory(ctl.endpoint, "b")
    with pytest.raises(ConnectionError, match="too many joins at once; trying again"):
        client_factory(ctl.endpoint, "c", wait=3)  # refused for load: it waits and asks again, not an answer
    assert sorted(c.name for c in ctl.clients) == ["a", "b"]
    assert ctl.defense()["refused_joins"] >= 1


def test_rate_limit_refills_at_its_rate():
    from nbfl.transport.limits import RateLimit

    now = [0.0]
    limit = RateLimit(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limit.allow() for _ in range(4)] == [True, True, True, False]
    now[0] = 0.5  # half a second at 2 a second: one more
    assert [limit.allow(), limit.allow()] == [True, False]


def test_a_run_waits_for_clients_that_left_instead_of_failing_rounds(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "a", tasks=adder(1.0, 1))
    b = client_factory(ctl.endpoint, "b", tasks=adder(1.0, 1))
    ctl.wait_for_clients(2)
    with pytest.raises(TimeoutError, match="1 of 2 clients"):
        ctl.run(10, min_clients=2, join_timeout=1.0, on_round=lambda record: b.stop())
    assert ctl.history[0].status == "ok" and len(ctl.history) <= 2  # not ten failed rounds
    assert ctl.run(1, "fedopt", min_clients=1)[0].workflow == "fedopt"  # a name will do


@pytest.mark.parametrize("budget, pulled", [(64 << 20, 0), (1, 4)])  # a small model's results go direct
def test_results_beyond_the_direct_slots_are_pulled_one_by_one(
    controller_factory, client_factory, monkeypatch, budget, pulled
):
    """A small model's results come as soon as each is done; where the results would take
    more than the budget (a large model: here the budget is made 1 byte), max_inflight
    clients send at once and the others announce "ready" and wait for a pull. FedAvg is
    the same either way."""
    import nbfl.controller.run as run_module
    from nbfl.protocol import wire

    monkeypatch.setattr(run_module, "DIRECT_BYTES", budget)
    sent = []
    original = wire.message

    def counting(*args, **fields):  # a result has a field named kind too: the message's kind is args[0]
        sent.append(str(args[0]))
        return original(*args, **fields)

    monkeypatch.setattr(wire, "message", counting)
    w0 = small_model()
    ctl = controller_factory(w0, max_inflight=2)
    for i in range(6):
        client_factory(ctl.endpoint, f"c{i}", tasks=adder(float(i), 1))
    ctl.wait_for_clients(6)
    (record,) = ctl.run(1, min_clients=6)
    assert record.ok and len(record.clients) == 6
    np.testing.assert_allclose(ctl.weights["w"], w0["w"] + 2.5, rtol=1e-6)  # the mean of 0 .. 5
    assert sent.count("pull") == sent.count("ready") == pulled
