"""The algorithms' arithmetic, with numbers worked by hand, and their wiring over real sockets."""

import numpy as np
import pytest
import torch

from nbfl.aggregators import WeightedMean, robust
from nbfl.aggregators.fedopt import ServerAdam, ServerSGD, ServerYogi
from nbfl.algorithms.fedprox.client import proximal_term
from nbfl.algorithms.scaffold import DC as DC_PREFIX
from nbfl.algorithms.scaffold import RUN as RUN_KEY
from nbfl.algorithms.scaffold import C as C_PREFIX
from nbfl.algorithms.scaffold.client import client_control_update
from nbfl.algorithms.scaffold.client_torch import ScaffoldClient
from nbfl.participant.tasks import Update
from nbfl.protocol.names import DataKind
from nbfl.workflows import Cyclic, FedAvg, FedOpt, FedProx, RobustAggregation, Scaffold

from helpers import small_model


def vec(*values):
    return {"w": np.array(values, np.float32)}


# -- FedAvg and FedOpt -----------------------------------------------------------
def test_fedavg_is_the_weighted_mean():
    mean = WeightedMean(vec(0.0, 0.0))
    mean.accept(vec(1.0, 4.0), 1.0)
    mean.accept(vec(4.0, 1.0), 2.0)
    # (1*1 + 2*4) / 3 = 3 ; (1*4 + 2*1) / 3 = 2
    np.testing.assert_array_equal(mean.result()["w"], [3.0, 2.0])


def test_fedopt_sgd_lr1_momentum0_is_fedavg_exactly():
    rng = np.random.default_rng(1)
    for _ in range(20):
        g = {"w": rng.normal(size=1000).astype(np.float32)}
        m = {"w": (g["w"] + rng.normal(scale=10.0 ** rng.integers(-6, 2), size=1000)).astype(np.float32)}
        new = ServerSGD(lr=1.0, momentum=0.0).step(g, m)
        assert new["w"].dtype == np.float32
        np.testing.assert_array_equal(new["w"], m["w"])


def test_fedopt_momentum_carries_over_rounds():
    opt = ServerSGD(lr=1.0, momentum=0.6)
    # round 1: g = 1, mean 0.5 -> grad 0.5, v = 0.5, g' = 1 - 0.5 = 0.5
    g = opt.step({"w": np.array([1.0])}, {"w": np.array([0.5])})
    assert g["w"][0] == pytest.approx(0.5)
    # round 2: g = 0.5, mean 0.25 -> grad 0.25, v = 0.6 * 0.5 + 0.25 = 0.55, g' = 0.5 - 0.55 = -0.05
    g = opt.step(g, {"w": np.array([0.25])})
    assert g["w"][0] == pytest.approx(-0.05)
    # without the carried state round 2 would have given 0.25
    assert ServerSGD(lr=1.0, momentum=0.6).step({"w": np.array([0.5])}, {"w": np.array([0.25])})["w"][0] == 0.25


def test_fedadam_and_fedyogi_first_step_by_hand():
    g, mean = {"w": np.array([1.0])}, {"w": np.array([0.0])}  # grad = 1
    # m = 0.1 * 1 = 0.1 ; v = 0.99 * tau^2 + 0.01 * 1 = 0.01000099 ; step = 0.1 / (sqrt(v) + 1e-3)
    step = 0.1 / (np.sqrt(0.99e-6 + 0.01) + 1e-3)
    assert ServerAdam(lr=0.1).step(g, mean)["w"][0] == pytest.approx(1.0 - 0.1 * step, rel=1e-12)
    # Yogi: v = tau^2 - 0.01 * 1 * sign(tau^2 - 1) = 1e-6 + 0.01
    step = 0.1 / (np.sqrt(1e-6 + 0.01) + 1e-3)
    assert ServerYogi(lr=0.1).step(g, mean)["w"][0] == pytest.approx(1.0 - 0.1 * step, rel=1e-12)


# -- SCAFFOLD ----------------------------------------------------------------------
X, C = vec(1.0, 2.0), {"w": np.array([0.1, -0.1])}
# client 1: c1 = 0, reached y1 = (0.8, 1.9) in K = 4 steps of lr 0.1:
#   c1+ = 0 - (0.1, -0.1) + (0.2, 0.1) / 0.4 = (0.4, 0.35)
# client 2: c2 = (0.2, 0), reached y2 = (1.2, 2.2) in K = 2 steps of lr 0.1:
#   c2+ = (0.2, 0) - (0.1, -0.1) + (-0.2, -0.2) / 0.2 = (-0.9, -0.9)
CASES = {
    "one": ({"w": np.zeros(2)}, vec(0.8, 1.9), 4, [0.4, 0.35]),
    "two": ({"w": np.array([0.2, 0.0])}, vec(1.2, 2.2), 2, [-0.9, -0.9]),
}


def test_scaffold_client_control_update_by_hand():
    for c_local, y, steps, expected in CASES.values():
        new = client_control_update(c_local, C, X, y, steps, 0.1)
        np.testing.assert_allclose(new["w"], expected, rtol=1e-6)


def test_scaffold_server_update_by_hand(controller_factory, client_factory):
    """dc1 = (0.4, 0.35), dc2 = (-1.1, -0.9): c' = c + (dc1 + dc2) / 2 = (-0.25, -0.375);
    x' = x + mean(dy) = (1 + (-0.2 + 0.2) / 2, 2 + (-0.1 + 0.2) / 2) = (1, 2.05)."""
    ctl = controller_factory(X)
    workflow = Scaffold(weight_by="equal")
    workflow.control = {"w": C["w"].copy()}
    seen = {}

    def client(name):
        c_local, y, steps, _ = CASES[name]

        def train(tensors, ctx):
            seen[name] = (ctx.meta[RUN_KEY], tensors[C_PREFIX + "w"].copy())
            c_new = client_control_update(c_local, C, X, y, steps, 0.1)
            dy = {"w": y["w"] - X["w"]}
            return Update({**dy, DC_PREFIX + "w": c_new["w"] - c_local["w"]}, kind=DataKind.WEIGHT_DIFF)

        return train

    for name in CASES:
        client_factory(ctl.endpoint, name, tasks={"train": client(name)})
    ctl.wait_for_clients(2)
    assert ctl.run(1, workflow)[0].status == "ok"
    np.testing.assert_allclose(workflow.control["w"], [-0.25, -0.375], rtol=1e-6)
    np.testing.assert_allclose(ctl.weights["w"], [1.0, 2.05], rtol=1e-6)
    assert all(run == workflow.run_id for run, _ in seen.values())
    assert all(np.array_equal(c, C["w"]) for _, c in seen.values())


def test_scaffold_client_corrects_gradients_and_updates_its_variate():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1, bias=False)
    x = {"weight": np.array([[1.0, -1.0]], np.float32)}
    c = np.array([[0.5, 0.25]])
    helper = ScaffoldClient()
    weights = helper.begin(model, {**x, C_PREFIX + "weight": c}, {RUN_KEY: "run-1"})
    model.load_state_dict({"weight": torch.from_numpy(weights["weight"])})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = model(torch.tensor([[1.0, 2.0]])).sum()  # gradient (1, 2)
    loss.backward()
    helper.correct(model)  # c_i = 0: gradient + c = (1.5, 2.25)
    opt.step()  # w = (1, -1) - 0.1 * (1.5, 2.25) = (0.85, -1.225)
    np.testing.assert_allclose(model.weight.detach().numpy(), [[0.85, -1.225]], rtol=1e-6)
    out = helper.finish(model, steps=1, lr=0.1)
    # c_i+ = 0 - c + (x - y) / 0.1 = -(0.5, 0.25) + (1.5, 2.25) = (1, 2): the plain gradient
    np.testing.assert_allclose(out[DC_PREFIX + "weight"], [[1.0, 2.0]], rtol=1e-5)
    np.testing.assert_allclose(out["weight"], [[-0.15, -0.225]], rtol=1e-5)
    helper.begin(model, {**x, C_PREFIX + "weight": c}, {RUN_KEY: "run-2"})  # a new run starts from zero
    assert not helper.c_local["weight"].any()


# -- FedProx -----------------------------------------------------------------------
def test_proximal_term_by_hand():
    model = torch.nn.Linear(2, 1)
    term = proximal_term(model, mu=0.5)
    assert float(term(model).detach()) == 0.0
    with torch.no_grad():
        model.weight += torch.tensor([[1.0, 2.0]])  # ||d||^2 = 1 + 4 = 5
        model.bias += 3.0  # + 9
    assert float(term(model).detach()) == pytest.approx(0.5 / 2 * 14)


# -- robust aggregation --------------------------------------------------------------
HONEST = [vec(1.0, -1.0), vec(1.1, -0.9), vec(0.9, -1.1), vec(1.05, -0.95)]
ATTACK = vec(1.0e6, -1.0e6)


def test_median_and_trimmed_mean_ignore_a_scaled_client_that_poisons_fedavg():
    models = HONEST + [ATTACK]
    # median of (0.9, 1, 1.05, 1.1, 1e6) is 1.05; of (-1.1, -1, -0.95, -0.9, -1e6) is -1
    np.testing.assert_allclose(robust.median(models)["w"], [1.05, -1.0], rtol=1e-6)
    # beta 0.2 of 5 drops one at each end: mean(1, 1.05, 1.1) = 1.05, mean(-1.1, -1, -0.95) = -1.0166..
    np.testing.assert_allclose(robust.trimmed_mean(models, 0.2)["w"], [1.05, -3.05 / 3], rtol=1e-6)
    mean = WeightedMean(HONEST[0])
    for m in models:
        mean.accept(m, 1.0)
    assert abs(mean.result()["w"][0]) > 1e5  # FedAvg follows the attacker: (4.05 + 1e6) / 5


def test_krum_picks_an_honest_model_and_multi_krum_averages_honest_ones():
    models = HONEST + [ATTACK]
    scores = robust.krum_scores(models, f=1)
    assert scores.argmax() == 4  # the attacker is farthest from everyone
    chosen = robust.krum(models, f=1)["w"]
    assert any(np.array_equal(chosen, h["w"]) for h in HONEST)
    multi = robust.krum(models, f=1, m=3)["w"]
    assert np.all(np.abs(multi - [1.0, -1.0]) < 0.11)
    with pytest.raises(ValueError, match="needs more than 4"):
        robust.krum(HONEST, f=1)


# -- workflows over real sockets -------------------------------------------------------
def fixed(update):
    def train(weights, ctx):
        return {k: np.array(v, dtype=weights[k].dtype) for k, v in update.items()}

    return train


@pytest.mark.parametrize("rule", ["median", "trimmed_mean", "krum"])
def test_robust_workflow_resists_an_attacker_over_sockets(controller_factory, client_factory, rule):
    ctl = controller_factory(vec(0.0, 0.0))
    for i, update in enumerate(HONEST + [ATTACK]):
        client_factory(ctl.endpoint, f"site-{i}", tasks={"train": fixed(update)})
    ctl.wait_for_clients(5)
    assert ctl.run(1, RobustAggregation(rule, beta=0.2, f=1))[0].status == "ok"
    assert np.all(np.abs(ctl.weights["w"] - [1.0, -1.0]) < 0.11)
    poisoned = controller_factory(vec(0.0, 0.0))
    for i, update in enumerate(HONEST + [ATTACK]):
        client_factory(poisoned.endpoint, f"site-{i}", tasks={"train": fixed(update)})
    poisoned.wait_for_clients(5)
    poisoned.run(1, FedAvg(weight_by="equal"))
    assert abs(poisoned.weights["w"][0]) > 1e5


def visit(tag):
    def train(weights, ctx):
        return {"w": weights["w"] * 10 + tag}

    return train


@pytest.mark.parametrize("order, expected", [("fixed", ["a", "b", "c"]), (["c", "a", "b"], ["c", "a", "b"])])
def test_cyclic_passes_the_model_in_the_declared_order(controller_factory, client_factory, order, expected):
    ctl = controller_factory({"w": np.zeros(1)})
    for tag, name in ((3, "c"), (1, "a"), (2, "b")):  # join out of order
        client_factory(ctl.endpoint, name, tasks={"train": visit(tag)})
    ctl.wait_for_clients(3)
    record = ctl.run(1, Cyclic(order=order))[0]
    assert record.notes["order"] == expected
    digits = {"a": "1", "b": "2", "c": "3"}
    assert ctl.weights["w"][0] == float("".join(digits[n] for n in expected))  # 0*10+1 -> 1*10+2 -> 12*10+3


def test_cyclic_shuffled_order_is_seeded_and_followed(controller_factory, client_factory):
    ctl = controller_factory({"w": np.zeros(1)})
    for tag, name in ((1, "a"), (2, "b"), (3, "c"), (4, "d")):
        client_factory(ctl.endpoint, name, tasks={"train": visit(tag)})
    ctl.wait_for_clients(4)
    records = ctl.run(2, Cyclic(order="shuffled", seed=7))
    value = 0.0
    for record in records:
        assert sorted(record.notes["order"]) == ["a", "b", "c", "d"]
        for name in record.notes["order"]:
            value = value * 10 + "abcd".index(name) + 1
    assert ctl.weights["w"][0] == value
    assert Cyclic(order="shuffled", seed=7).visit_order(ctl.live_clients(), 1) == Cyclic(
        order="shuffled", seed=7
    ).visit_order(ctl.live_clients(), 1)


def test_fedprox_sends_mu_and_fedopt_keeps_state_between_runs(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    seen = []

    def train(weights, ctx):
        seen.append(ctx.meta.get("fedprox_mu"))
        return {k: v * 0.5 for k, v in weights.items()}

    client_factory(ctl.endpoint, "a", tasks={"train": train})
    ctl.wait_for_clients(1)
    ctl.run(1, FedProx(mu=0.25))
    assert seen == [0.25]
    workflow = FedOpt("sgd", lr=1.0, momentum=0.6)
    ctl.run(1, workflow)
    ctl.run(1, workflow)  # a second %fl_round with the same workflow object
    assert workflow.optimizer.steps == 2 and workflow.optimizer.state


def test_fedopt_sgd_lr1_momentum0_equals_fedavg_over_sockets(controller_factory, client_factory):
    def shifted(seed):
        def train(weights, ctx):
            rng = np.random.default_rng(seed + ctx.round)
            return Update({k: v + rng.normal(size=v.shape).astype(v.dtype) for k, v in weights.items()}, num_samples=10)

        return train

    finals = []
    for workflow in (FedAvg(), FedOpt("sgd", lr=1.0, momentum=0.0)):
        ctl = controller_factory(small_model())
        for i in range(2):  # two equal weights: a + b == b + a, so arrival order cannot matter
            client_factory(ctl.endpoint, f"site-{i}", tasks={"train": shifted(i)})
        ctl.wait_for_clients(2)
        assert [r.status for r in ctl.run(3, workflow)] == ["ok"] * 3
        finals.append(ctl.weights)
    for name in finals[0]:
        np.testing.assert_array_equal(finals[0][name], finals[1][name])
