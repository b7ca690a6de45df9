"""A participant cannot poison the federation with numbers: an absurd step count, updates
whose sum overflows, a flood of metrics. The bad result is rejected and its sender told,
a non-finite aggregate is never adopted or checkpointed, and the controller carries on.
Real controllers and clients on 127.0.0.1."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

import nbfl
from nbfl.aggregators import WeightedMean
from nbfl.controller import checkpoint
from nbfl.data import load_digits_split
from nbfl.participant.builtin import built_in_client, digits_setup
from nbfl.participant.models import DigitsMLP
from nbfl.participant.trainers import evaluator
from nbfl.protocol.joining import Share
from nbfl.protocol.names import DataKind
from nbfl.protocol.records import MAX_METRICS, Result, RoundRecord
from nbfl.protocol.weights import UpdateError
from nbfl.workflows import FedAvg, FedOpt
from nbfl.workflows.scatter_gather import MAX_WEIGHT

from helpers import FAST, small_model, until


def finite(weights) -> bool:
    return all(np.isfinite(v).all() for v in weights.values())


def echo(steps: float):
    """Mallory's task: the model it was sent, unchanged, claiming ``steps`` steps of training."""

    def train(weights, ctx):
        return nbfl.Update(dict(weights), num_steps=steps)

    return {"train": train}


def constant(value: float):
    """A task that answers every tensor filled with ``value``: finite, but two of them overflow float32 when added."""

    def train(weights, ctx):
        return {k: np.full_like(v, value) for k, v in weights.items()}

    return {"train": train}


@pytest.mark.parametrize("steps", [1e300, 3e38])
def test_a_participant_claiming_absurd_steps_is_rejected_and_the_workshop_learns_on(tmp_path, client_factory, steps):
    torch.manual_seed(0)
    _, _, x_test, y_test = load_digits_split()
    evaluate = evaluator(DigitsMLP(), x_test, y_test)
    workshop = nbfl.Workshop(capacity=4, host="127.0.0.1")
    ctl = nbfl.Controller(
        "tcp://127.0.0.1:0", DigitsMLP(), workshop=workshop, evaluate=evaluate, checkpoint_dir=tmp_path, **FAST
    )
    with ctl:
        before = evaluate(ctl.weights)["accuracy"]
        for i in (1, 2, 3):
            client_factory(str(ctl.join_code), f"honest-{i}", from_share=digits_setup)
        mallory = client_factory(str(ctl.join_code), "mallory", tasks=echo(steps))
        records = ctl.run(3, min_clients=4, min_results=3, timeout=120, join_timeout=120)

        assert [r.outcome for r in records] == ["ok, 1 of 4 failed"] * 3
        for r in records:
            assert list(r.failed) == ["mallory"] and sorted(r.clients) == ["honest-1", "honest-2", "honest-3"]
            assert r.failed["mallory"].startswith("update rejected: NUM_STEPS_CURRENT_ROUND = ")
            assert f"at most {MAX_WEIGHT:g}" in r.failed["mallory"]
        until(lambda: "update rejected: NUM_STEPS_CURRENT_ROUND" in (mallory.last_error or ""))  # mallory was told
        assert finite(ctl.weights)
        assert all(np.isfinite(list(r.metrics.values())).all() for r in records)
        assert records[-1].metrics["accuracy"] > before

        ctl.check_alive()
        [again] = ctl.run(1, min_clients=4, min_results=3, timeout=120)
        assert again.outcome == "ok, 1 of 4 failed" and again.round == 4
        saved = checkpoint.latest(tmp_path)
        assert saved.round == 4 and not saved.skipped and finite(saved.weights)

    with nbfl.Controller("tcp://127.0.0.1:0", resume=tmp_path, evaluate=evaluate, **FAST) as resumed:
        assert resumed.resumed.round == 4
        client_factory(resumed.endpoint, "honest-1", **built_in_client(Share(0, 4)))
        [record] = resumed.run(1, timeout=120)
        assert record.ok and record.round == 5 and finite(resumed.weights)
        assert record.metrics["accuracy"] > before


def test_max_weight_is_the_workflows_to_set():
    steps = Result("a", DataKind.WEIGHTS, {}, {"NUM_STEPS_CURRENT_ROUND": 5e9, "num_samples": 10}, 0.0)
    with pytest.raises(UpdateError, match="at most 1e\\+09"):
        FedAvg().weight_of(steps)
    assert FedOpt("sgd", max_weight=1e10).weight_of(steps) == 5e9
    assert FedAvg(weight_by="samples").weight_of(steps) == 10.0
    for bad in (True, 0, -3, float("nan"), float("inf"), "12", [12], 10**400):
        with pytest.raises(UpdateError, match="NUM_STEPS_CURRENT_ROUND = .* cannot weight an update"):
            FedAvg().weight_of(Result("a", DataKind.WEIGHTS, {}, {"NUM_STEPS_CURRENT_ROUND": bad}, 0.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_from_1e_3_to_1e9_give_the_float64_weighted_mean(dtype):
    rng = np.random.default_rng(0)
    weights = [1e-3, 0.5, 1.0, 1.0, 7.0, 1e4, MAX_WEIGHT]
    updates = [rng.normal(size=1000).astype(dtype) for _ in weights]
    reference = sum(w * x.astype(np.float64) for w, x in zip(weights, updates)) / sum(weights)
    for order in (list(range(len(weights))), list(range(len(weights)))[::-1], list(rng.permutation(len(weights)))):
        mean = WeightedMean({"w": np.zeros(1000, dtype)})
        for i in order:
            mean.accept({"w": updates[i].copy()}, weights[i], owned=True)
        out = mean.result()["w"]
        assert out.dtype == dtype
        np.testing.assert_allclose(out, reference, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-9)


def test_no_order_of_bounded_weights_overflows_the_accumulator():
    big = np.float32(1e38)  # three of them still fit in float32; any factor above 3.4 would not
    for kind in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF):
        for order in itertools.permutations([1e-3, 1.0, 1e3, MAX_WEIGHT]):
            mean = WeightedMean({"w": np.zeros(8, np.float32)})
            for i, w in enumerate(order):
                mean.accept({"w": np.full(8, big if i < 3 else -big, np.float32)}, w, kind)
            out = mean.result()["w"]
            expected = sum(w * (1e38 if i < 3 else -1e38) for i, w in enumerate(order)) / sum(order)
            assert np.isfinite(out).all(), (kind, order)
            np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e31)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the overflow is the point
def test_an_aggregate_that_overflows_fails_the_round_and_keeps_the_model(tmp_path, controller_factory, client_factory):
    start = small_model()
    ctl = controller_factory(start, checkpoint_dir=tmp_path)
    for name in ("a", "b"):
        client_factory(ctl.endpoint, name, tasks=constant(3e38))  # each finite; their float32 sum is inf
    [record] = ctl.run(1, FedAvg(weight_by="equal"), min_clients=2, timeout=60)
    assert record.status == "failed"
    assert record.reason.startswith("the aggregate is not finite (NaN or Inf in ")
    assert record.reason.endswith("the global model stays round 0's")
    assert all(np.array_equal(ctl.weights[k], v) for k, v in start.items())
    saved = checkpoint.latest(tmp_path)  # the round is recorded, with the model it kept
    assert saved.round == 1 and saved.history[0].status == "failed" and finite(saved.weights)
    ctl.check_alive()


def test_a_checkpoint_is_never_written_with_nan_and_one_holding_nan_is_skipped(tmp_path):
    with pytest.raises(ValueError, match="w in model.safetensors holds NaN or Inf"):
        checkpoint.save(tmp_path, {"w": np.array([1.0, np.nan], np.float32)}, [])
    assert not list(tmp_path.iterdir())  # nothing, not even a staging folder
    adam = FedOpt("adam")
    adam.optimizer.step({"w": np.zeros(2, np.float32)}, {"w": np.ones(2, np.float32)})  # moments to keep
    for n in (1, 2):
        checkpoint.save(
            tmp_path, {"w": np.full(2, n, np.float32)}, [RoundRecord(i, "fedopt") for i in range(1, n + 1)], adam
        )
    good = checkpoint.load(tmp_path / "round-000002")
    newest = tmp_path / "round-000002"
    for filename, tensors in ((checkpoint.WORKFLOW, good.workflow_arrays), (checkpoint.MODEL, good.weights)):
        first = next(iter(tensors))
        save_file({**tensors, first: np.full_like(tensors[first], np.nan)}, str(newest / filename))
        manifest = json.loads((newest / checkpoint.MANIFEST).read_text())
        manifest["sha256"][filename] = checkpoint._sha256(newest / filename)  # only the content is bad
        (newest / checkpoint.MANIFEST).write_text(json.dumps(manifest))
        saved = checkpoint.latest(tmp_path)
        assert saved.round == 1 and saved.weights["w"][0] == 1
        assert saved.skipped == [f"round-000002: {filename}: {first} holds NaN or Inf"]


def test_a_flood_of_metrics_keeps_at_most_32_finite_ones(controller_factory, client_factory):
    junk = {
        **{f"m{i:05d}": float(i) for i in range(10_000)},
        "yes": True,
        "text": "0.5",
        "list": [1.0],
        "nested": {"a": 1},
        "x" * 65: 1.0,
        "line\nbreak": 1.0,
        "": 1.0,
        "seconds": 1e6,
        "huge": 2**62,
    }
    junk = dict(reversed(list(junk.items())))  # the junk first: it must be skipped, not counted

    def train(weights, ctx):
        return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=1, metrics=junk)

    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "flood", tasks={"train": train})
    records = ctl.run(2, timeout=60)
    assert all(r.ok for r in records)
    for r in records:
        kept = {k: v for k, v in r.clients["flood"].items() if k != "seconds"}
        assert list(kept)[:2] == ["huge", "m09999"] and len(kept) == MAX_METRICS - 1  # and its "seconds"
        assert r.clients["flood"]["seconds"] != 1e6  # measured by the controller, not taken from the client
        assert all(type(v) is float and np.isfinite(v) for v in kept.values())
    [info] = ctl.clients
    assert len(info.last_metrics) == MAX_METRICS
    ctl.check_alive()


def test_metrics_that_are_not_finite_numbers_are_dropped():
    raw = {
        "nan": float("nan"),
        "inf": float("-inf"),
        "big": 10**400,
        "flag": False,
        "f32": np.float32(0.25),
        "n": 3,
        "none": None,
        "ok": 0.5,
    }
    assert Result("a", DataKind.WEIGHTS, {}, {"metrics": raw}, 0.0).metrics == {"f32": 0.25, "n": 3.0, "ok": 0.5}
    assert Result("a", DataKind.WEIGHTS, {}, {"metrics": [1, 2]}, 0.0).metrics == {}


def test_a_nan_loss_from_evaluate_is_noted_and_kept_out_of_the_next_task(controller_factory, client_factory):
    ctl = controller_factory(small_model(), evaluate=lambda weights: {"accuracy": 0.5, "loss": float("nan")})
    seen = []

    def train(weights, ctx):
        seen.append(ctx.round)
        return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=1)

    client = client_factory(ctl.endpoint, "a", tasks={"train": train})
    records = ctl.run(2, timeout=60)  # the second task's header carries round 1's metrics
    assert [r.status for r in records] == ["ok", "ok"] and len(seen) == 2
    assert all(r.metrics == {"accuracy": 0.5} and r.notes["metrics_dropped"] == {"loss": "nan"} for r in records)
    assert client.global_metrics == {"accuracy": 0.5}
