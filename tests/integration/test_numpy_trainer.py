"""The numpy trainer: torch's digits MLP in numpy, step for step, and a room where torch
and numpy participants train one model together, over real sockets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import nbfl
from nbfl.algorithms import fedprox, scaffold
from nbfl.data import load_digits_split
from nbfl.participant import numpy_trainer as npt
from nbfl.participant.builtin import built_in_client, choose, digits_model
from nbfl.participant.executor import DXO, Executor, FLContext, Signal, from_shareable
from nbfl.participant.local_trainer import LocalTrainer
from nbfl.participant.models import DigitsMLP
from nbfl.participant.numpy_trainer import NumpyTrainer
from nbfl.participant.trainers import ArrayTrainer
from nbfl.protocol import names
from nbfl.protocol.joining import Share
from nbfl.protocol.names import DataKind
from nbfl.protocol.torch_adapter import get_weights

TOL = {"rtol": 1e-5, "atol": 1e-6}  # float32, summed in another order


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


def assert_same(a, b, **tol):
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_allclose(a[name], b[name], err_msg=name, **(tol or TOL))


# -- the maths, against torch ------------------------------------------------------
def test_weights_have_digits_mlps_names_shapes_dtype_and_init_range():
    torch_weights = get_weights(DigitsMLP())
    ours = npt.init_weights(seed=3)
    assert list(ours) == list(torch_weights)
    assert all(ours[k].shape == v.shape and ours[k].dtype == v.dtype == np.float32 for k, v in torch_weights.items())
    bound = 1 / np.sqrt(64)  # nn.Linear's default: uniform in 1/sqrt(fan_in), 64 for both layers
    for name, w in ours.items():
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, name
    assert_same(ours, npt.init_weights(seed=3), rtol=0, atol=0)  # seeded
    assert not np.array_equal(ours["fc1.weight"], npt.init_weights(seed=4)["fc1.weight"])


def test_forward_loss_and_gradients_equal_torch_autograd(digits):
    x, y = digits[0][:50], digits[1][:50]
    torch.manual_seed(1)
    model = DigitsMLP()
    weights = {k: v.copy() for k, v in get_weights(model).items()}
    logits = model(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
    loss.backward()
    ours, grads = npt.loss_and_grads(weights, x, y)
    np.testing.assert_allclose(npt.forward(weights, x)[0], logits.detach().numpy(), **TOL)
    assert ours == pytest.approx(loss.item(), rel=1e-6)
    assert_same(grads, {k: p.grad.numpy() for k, p in model.named_parameters()})
    assert npt.evaluate(weights, x, y) == pytest.approx(
        {"accuracy": float((logits.argmax(1).numpy() == y).mean()), "loss": loss.item()}, rel=1e-6
    )


def test_sgd_with_momentum_steps_equal_torch_optim_sgd():
    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(size=(3, 4)).astype(np.float32)}
    param = torch.nn.Parameter(torch.from_numpy(weights["w"].copy()))
    opt = torch.optim.SGD([param], lr=0.05, momentum=0.9)
    velocity = {"w": np.zeros_like(weights["w"])}
    for _ in range(4):  # the first step starts the buffer, the others carry it
        grad = rng.normal(size=(3, 4)).astype(np.float32)
        param.grad = torch.from_numpy(grad.copy())
        opt.step()
        npt.sgd_step(weights, {"w": grad}, velocity, lr=0.05, momentum=0.9)
        np.testing.assert_allclose(weights["w"], param.detach().numpy(), **TOL)


# -- whole train tasks, against the torch trainer ------------------------------------
def train(executor: Executor, tensors, meta, round_number: int = 1) -> DXO:
    reply = executor.execute(
        names.TRAIN,
        DXO(DataKind.WEIGHTS, dict(tensors), meta).to_shareable(),
        FLContext(props={"current_round": round_number}),
        Signal(),
    )
    return from_shareable(reply)


def both_trainers(digits):
    """The torch and the numpy trainer on one batch of 32: each epoch is one full-batch
    step, so the shuffled order (torch.randperm against numpy's) does not matter."""
    x, y = digits[0][:32], digits[1][:32]
    return ArrayTrainer(DigitsMLP(), x, y, epochs=3, device="cpu"), NumpyTrainer(x, y, epochs=3)


@pytest.mark.parametrize("meta", [{}, {fedprox.MU: 0.5}], ids=["fedavg", "fedprox"])
def test_a_train_task_gives_the_torch_trainers_weights(digits, meta):
    start = npt.init_weights(seed=1)
    results = [train(trainer, start, meta) for trainer in both_trainers(digits)]
    assert [r.data_kind for r in results] == [DataKind.WEIGHTS] * 2
    assert_same(results[0].data, results[1].data)
    assert results[0].meta["NUM_STEPS_CURRENT_ROUND"] == results[1].meta["NUM_STEPS_CURRENT_ROUND"] == 3
    assert results[0].meta["num_samples"] == results[1].meta["num_samples"] == 32
    assert results[0].meta["metrics"] == pytest.approx(results[1].meta["metrics"], rel=1e-5)
    plain = train(NumpyTrainer(digits[0][:32], digits[1][:32], epochs=3), start, {})
    moved = sum(np.abs(plain.data[k] - start[k]).sum() for k in start)
    pulled = sum(np.abs(results[1].data[k] - start[k]).sum() for k in start)
    assert (pulled < moved) if meta else (pulled == moved)  # FedProx's term pulls towards the global model


def test_scaffold_rounds_give_the_torch_trainers_diffs_and_variates(digits):
    start = npt.init_weights(seed=1)
    rng = np.random.default_rng(2)
    trainers = both_trainers(digits)
    for round_number in (1, 2):  # in round 2 each client's own variate c_i is no longer zero
        c = {scaffold.C + k: rng.normal(scale=0.1, size=v.shape) for k, v in start.items()}
        a, b = (train(t, {**start, **c}, {scaffold.RUN: "run-1"}, round_number) for t in trainers)
        assert a.data_kind == b.data_kind == DataKind.WEIGHT_DIFF
        assert_same(a.data, b.data)
        assert len(a.data) == 8  # the weights' diffs and the variates' changes
    assert_same(trainers[0].scaffold.c_local, trainers[1].scaffold.c_local)
    assert any(v.any() for v in trainers[1].scaffold.c_local.values())


def test_validate_statistics_and_submit_answer_like_the_torch_trainer(digits):
    x, y = digits[0][:200], digits[1][:200]
    start = npt.init_weights(seed=5)
    trainers = ArrayTrainer(DigitsMLP(), x, y, device="cpu"), NumpyTrainer(x, y)

    def ask(trainer: Executor, task: str, meta=None) -> DXO:
        task_data = DXO(DataKind.WEIGHTS, dict(start), meta).to_shareable()
        return from_shareable(trainer.execute(task, task_data, FLContext(), Signal()))

    by_torch, by_numpy = (ask(t, names.VALIDATE) for t in trainers)
    assert by_torch.data_kind == by_numpy.data_kind == DataKind.METRICS
    assert by_numpy.meta["metrics"] == pytest.approx(by_torch.meta["metrics"], rel=1e-5)
    by_torch, by_numpy = (ask(t, names.STATISTICS, {names.STATS_PASS: 1}) for t in trainers)
    assert_same(by_torch.data, by_numpy.data, rtol=0, atol=0)
    submitted = ask(trainers[1], names.SUBMIT_MODEL)  # nothing trained yet: it trains once, then submits
    assert submitted.data_kind == DataKind.WEIGHTS and submitted.meta["num_samples"] == 200
    assert_same(submitted.data, trainers[1].local_weights, rtol=0, atol=0)
    assert not np.array_equal(submitted.data["fc1.weight"], start["fc1.weight"])


# -- a room of torch and numpy participants -------------------------------------------
class Recording(Executor):
    """Passes tasks on to ``inner`` and keeps a copy of each train result it returns."""

    def __init__(self, inner: LocalTrainer):
        super().__init__()
        self.inner = inner
        self.results: list[tuple[dict[str, np.ndarray], int]] = []

    def execute(self, task_name, shareable, fl_ctx, abort_signal):
        reply = self.inner.execute(task_name, shareable, fl_ctx, abort_signal)
        dxo = from_shareable(reply)
        self.results.append(({k: v.copy() for k, v in dxo.data.items()}, dxo.meta["num_samples"]))
        return reply


def test_torch_and_numpy_participants_average_into_one_model(controller_factory, client_factory, digits):
    model, evaluate = digits_model(seed=0, trainer="torch")
    ctl = controller_factory(model, evaluate=evaluate)
    recorders = []
    for i, trainer in enumerate(["torch", "torch", "numpy", "numpy"]):
        local = built_in_client(Share(i, 4, "dirichlet:1.0", 0), epochs=2, device="cpu", trainer=trainer)
        recorders.append(Recording(local.pop("executor")))
        client_factory(ctl.endpoint, f"{trainer}-{i}", recorders[-1], **local)
    assert [type(r.inner) for r in recorders] == [ArrayTrainer, ArrayTrainer, NumpyTrainer, NumpyTrainer]
    ctl.wait_for_clients(4)
    records = ctl.run(3, nbfl.workflows.FedAvg(weight_by="samples"), min_clients=4, timeout=120)
    assert [r.status for r in records] == ["ok"] * 3, records[-1].failed
    last = [r.results[-1] for r in recorders]
    assert len({n for _, n in last}) > 1  # the shares differ in size: the weighting matters
    total = sum(n for _, n in last)
    expected = {k: sum(n * w[k].astype(np.float64) for w, n in last) / total for k in ctl.weights}
    assert_same({k: v.astype(np.float64) for k, v in ctl.weights.items()}, expected)
    accuracy = records[-1].metrics["accuracy"]
    assert accuracy > 0.75  # chance is 0.1; three rounds of these four clients reach about 0.86
    # the numpy evaluator rates the global model as the torch one did
    assert npt.evaluate(ctl.weights, *digits[2:])["accuracy"] == pytest.approx(accuracy, abs=1e-6)


# -- a participant without torch ------------------------------------------------------
NO_TORCH = """
import json, sys

class NoTorch:
    '''torch is not installed here: every import of it fails, as on a small install.'''
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, NoTorch())
import nbfl
from nbfl.participant.builtin import built_in_client, choose, digits_model
from nbfl.protocol.joining import Share

fast = {"heartbeat_interval": 0.1, "heartbeat_timeout": 2.0}
model, evaluate = digits_model()  # what a controller without torch starts with
with nbfl.Controller("tcp://127.0.0.1:0", model, evaluate=evaluate, **fast) as ctl:
    clients = [nbfl.Client(ctl.endpoint, f"site-{i}", **built_in_client(Share(i, 2, "iid", 0)), **fast).start(30)
               for i in range(2)]
    ctl.wait_for_clients(2)
    records = ctl.run(3, nbfl.workflows.FedAvg(), min_clients=2, timeout=120)
    for client in clients:
        client.stop()
print(json.dumps({
    "choice": choose(), "status": [r.status for r in records], "accuracy": records[-1].metrics.get("accuracy"),
    "executor": type(clients[0].executor).__name__, "torch": "torch" in sys.modules, "sklearn": "sklearn" in sys.modules,
}))
"""


def test_without_torch_a_controller_and_two_clients_train_on_numpy_alone():
    env = {k: v for k, v in os.environ.items() if k != "NBFL_TRAINER"}
    out = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, text=True, timeout=240, env=env)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["choice"] == "numpy" and seen["executor"] == "NumpyTrainer"
    assert seen["status"] == ["ok"] * 3
    assert seen["accuracy"] > 0.8  # chance is 0.1; it reaches about 0.91
    assert not seen["torch"] and not seen["sklearn"]


# -- the choice ---------------------------------------------------------------------
def test_the_choice_follows_the_argument_then_the_environment(monkeypatch):
    monkeypatch.delenv("NBFL_TRAINER", raising=False)
    assert choose() == "torch"  # auto: torch is installed here
    monkeypatch.setenv("NBFL_TRAINER", "numpy")
    assert choose() == "numpy" and choose("torch") == "torch" and choose("auto") == "torch"
    monkeypatch.setenv("NBFL_TRAINER", "jax")
    with pytest.raises(ValueError, match="auto, torch, numpy"):
        choose()
    with pytest.raises(ValueError, match="CPU"):
        built_in_client(Share(0, 2), trainer="numpy", device="cuda")


def test_nbfl_client_with_trainer_numpy_joins_and_trains(controller_factory):
    model, evaluate = digits_model(seed=0)
    ctl = controller_factory(model, evaluate=evaluate)
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nbfl",
                "client",
                ctl.endpoint,
                "--name",
                f"{trainer}-{i}",
                "--index",
                str(i),
                "--num-clients",
                "2",
                "--epochs",
                "1",
                "--trainer",
                trainer,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, trainer in enumerate(["numpy", "torch"])
    ]
    try:
        joined = [c.stdout.readline() for c in clients]
        assert re.match(r"joined tcp://\S+ as numpy-0; training with numpy ", joined[0]), joined
        assert re.match(r"joined tcp://\S+ as torch-1; training with torch ", joined[1]), joined
        ctl.wait_for_clients(2)
        records = ctl.run(2, nbfl.workflows.FedAvg(), min_clients=2, timeout=120)
        assert [r.status for r in records] == ["ok"] * 2 and sorted(records[-1].clients) == ["numpy-0", "torch-1"]
        assert records[-1].metrics["accuracy"] > 0.5  # chance is 0.1; two rounds reach about 0.65
    finally:
        ctl.close()  # its bye ends the clients
        assert [c.wait(timeout=60) for c in clients] == [0, 0]
