"""Every algorithm trains the digits model end to end: real sockets, built-in trainers."""

import numpy as np
import pytest
import torch

from nbfl.data import load_digits_split, partition
from nbfl.participant.models import DigitsMLP
from nbfl.participant.trainers import ArrayTrainer, evaluator
from nbfl.workflows import ALGORITHMS, CrossSiteEval, FederatedStatistics, make_workflow


@pytest.fixture(scope="module")
def digits():
    return load_digits_split(seed=0)


def start(controller_factory, client_factory, digits, n=5):
    x, y, x_test, y_test = digits
    torch.manual_seed(0)
    model = DigitsMLP(hidden=32)
    ctl = controller_factory(model, evaluate=evaluator(model, x_test, y_test))
    for i, part in enumerate(partition("dirichlet:1.0", y, n, seed=0)):
        torch.manual_seed(i)
        trainer = ArrayTrainer(DigitsMLP(hidden=32), x[part], y[part], epochs=2, seed=i, device="cpu")
        client_factory(ctl.endpoint, f"site-{i}", trainer, samples=trainer.samples)
    ctl.wait_for_clients(n)
    return ctl, model


@pytest.mark.parametrize("name", sorted(set(ALGORITHMS) - {"he_fedavg"}))  # HE clients: tests/integration/test_he.py
def test_algorithm_trains_the_global_model(controller_factory, client_factory, digits, name):
    ctl, model = start(controller_factory, client_factory, digits)
    before = evaluator(model, *digits[2:])(ctl.weights)["accuracy"]
    records = ctl.run(3, make_workflow(name), min_clients=5, timeout=120)
    assert [r.status for r in records] == ["ok"] * 3, records[-1].failed
    assert all(np.isfinite(v).all() for v in ctl.weights.values())
    assert records[-1].metrics["accuracy"] > before + 0.3  # from chance (~0.1) towards 0.9


def test_cross_site_matrix_and_statistics_with_the_built_in_trainer(controller_factory, client_factory, digits):
    ctl, _ = start(controller_factory, client_factory, digits, n=3)
    ctl.run(2, make_workflow("fedavg"))
    trained = {k: v.copy() for k, v in ctl.weights.items()}
    record = ctl.run(1, CrossSiteEval())[0]
    matrix = np.array(record.notes["cross_site"]["values"], dtype=float)
    assert matrix.shape == (4, 3) and record.notes["cross_site"]["models"][-1] == "global"
    assert np.all((matrix >= 0) & (matrix <= 1))
    assert record.metrics == {}  # an evaluation workflow is not rated as a training round
    assert all(np.array_equal(trained[k], ctl.weights[k]) for k in trained)
    stats = FederatedStatistics(bins=4)
    ctl.run(1, stats)
    x = digits[0][np.concatenate(partition("dirichlet:1.0", digits[1], 3, seed=0))]
    np.testing.assert_allclose(stats.result["mean"], x.astype(np.float64).mean(0), rtol=0, atol=1e-9)
    np.testing.assert_allclose(stats.result["std"], x.astype(np.float64).std(0), rtol=0, atol=1e-9)
    assert stats.result["count"].tolist() == [len(x)] * 64
