"""--log-dir (issue 22, point 4): a run's rounds as TensorBoard scalars, read back with
TensorBoard's own reader, over real sockets."""

import pytest
from tensorboard.backend.event_processing import event_accumulator as accumulator

import nbfl

from helpers import small_model


def grows_by_one(loss: float):
    return lambda w: nbfl.Update({k: v + 1 for k, v in w.items()}, num_samples=1, metrics={"loss": loss})


def test_a_run_writes_each_rounds_scalars_that_tensorboard_reads(controller_factory, client_factory, tmp_path):
    evaluate = lambda weights: {"accuracy": float(weights["w"].mean())}  # noqa: E731 - grows 1 a round
    ctl = controller_factory(small_model(), evaluate=evaluate)
    for i in range(3):
        client_factory(ctl.endpoint, f"site-{i}", tasks={"train": grows_by_one(loss=float(i))})
    ctl.wait_for_clients(3)
    records = ctl.run(4, sample=2, log_dir=str(tmp_path / "fedavg"))
    [events] = list((tmp_path / "fedavg").iterdir())
    assert events.name.startswith("events.out.tfevents.")

    read = accumulator.EventAccumulator(str(tmp_path / "fedavg"))
    read.Reload()
    tags = set(read.Tags()["scalars"])
    assert {"global/accuracy", "round/seconds", "round/clients", "round/sampled", "clients/loss"} <= tags
    accuracy = read.Scalars("global/accuracy")
    assert [e.step for e in accuracy] == [r.round for r in records] == [1, 2, 3, 4]
    assert [round(e.value, 4) for e in accuracy] == [round(r.metrics["accuracy"], 4) for r in records]
    assert [e.value for e in read.Scalars("round/clients")] == [2.0] * 4
    for event, record in zip(read.Scalars("clients/loss"), records):  # the mean over the round's clients
        assert event.value == pytest.approx(sum(m["loss"] for m in record.clients.values()) / 2)
