"""Client sampling (issue 22, a first step): each round trains K of the connected clients,
picked by a generator seeded by the run's sampling seed and the round number, over real
sockets on 127.0.0.1. The picks and the seed are in each round's record."""

import numpy as np
import pytest

import nbfl
from nbfl.controller.settings import RunSettings
from nbfl.workflows import FedAvg

from helpers import small_model

NAMES = [f"site-{i:02d}" for i in range(10)]


def shift(by: float, samples: int):
    """A task that moves every value by ``by`` and reports ``samples``."""
    return {"train": lambda weights: nbfl.Update({k: v + by for k, v in weights.items()}, num_samples=samples)}


def room(controller_factory, client_factory):
    """A controller and ten clients, client i moving the model by i and holding i + 1 samples."""
    ctl = controller_factory(small_model())
    for i, name in enumerate(NAMES):
        client_factory(ctl.endpoint, name, tasks=shift(float(i), i + 1))
    ctl.wait_for_clients(len(NAMES))
    return ctl


def test_each_round_trains_exactly_its_sample_and_the_seed_replays_it(controller_factory, client_factory):
    first, again, other = (room(controller_factory, client_factory) for _ in range(3))
    records = first.run(5, FedAvg(), sample=3, sample_seed=7)
    replayed = again.run(5, FedAvg(), RunSettings(sample=3, sample_seed=7))
    reseeded = other.run(5, FedAvg(), sample=3, sample_seed=8)
    for record in records:
        assert record.ok and len(record.sampled) == 3 and record.sample_seed == 7
        assert sorted(record.clients) == record.sampled  # the others were not sent the model
    assert [r.sampled for r in replayed] == [r.sampled for r in records]
    assert [r.sampled for r in reseeded] != [r.sampled for r in records]
    assert len({tuple(r.sampled) for r in records}) > 1  # a new pick each round
    shown = f"sampled 3 of 10 (seed 7): {', '.join(records[-1].sampled)}"
    assert shown in first.last_run.summary() and shown in first.panel_status()["run"]["summary"]  # dashboard, panel


def test_fedavg_under_sampling_is_the_weighted_mean_of_the_sampled_clients(controller_factory, client_factory):
    ctl = room(controller_factory, client_factory)
    before = {k: v.copy() for k, v in ctl.weights.items()}
    [record] = ctl.run(1, FedAvg(), sample=0.4, sample_seed=3)  # a fraction: 4 of 10
    picked = [NAMES.index(name) for name in record.sampled]
    assert len(picked) == 4
    expected_shift = sum(i * (i + 1) for i in picked) / sum(i + 1 for i in picked)
    for name, value in ctl.weights.items():
        np.testing.assert_allclose(value, before[name] + expected_shift, rtol=1e-6)


def test_the_quorum_is_at_most_the_sample_and_bad_samples_are_refused(controller_factory, client_factory):
    ctl = room(controller_factory, client_factory)
    [record] = ctl.run(1, FedAvg(), sample=2, min_clients=5)  # 5 connected to start, 2 results close it
    assert record.ok and len(record.clients) == 2
    for bad in (0, 1.5, -1, 2.5):
        with pytest.raises(ValueError, match="sample must be a count"):
            ctl.start(1, FedAvg(), sample=bad)


def scaffold_site(index: int):
    """A site whose SCAFFOLD step is a fixed function of what it is sent: ``dy = (index + 1) *
    (0.1 - c)`` and ``dc = 0.01 * (index + 1) - c / 2``, so a reference can say what the
    controller should make of any sample."""
    from nbfl.algorithms.scaffold import DC, C

    def train(tensors):
        x = {k: v for k, v in tensors.items() if not k.startswith(C)}
        c = {k[len(C) :]: v for k, v in tensors.items() if k.startswith(C)}
        dy = {k: ((index + 1) * (0.1 - c[k])).astype(v.dtype) for k, v in x.items()}
        dc = {DC + k: 0.01 * (index + 1) - c[k] / 2 for k in x}  # in the variate's own dtype (float64)
        return nbfl.Update({**dy, **dc}, kind="WEIGHT_DIFF", num_samples=1)

    return {"train": train}


def test_scaffold_under_sampling_matches_the_partial_participation_reference(controller_factory, client_factory):
    """Karimireddy et al. (2020), algorithm 1 with a sample S of N clients and server rate 1:
    ``x += mean over S of dy_i`` and ``c += (1 / N) * sum over S of dc_i``."""
    from nbfl.workflows import Scaffold

    ctl = controller_factory(small_model())
    for i, name in enumerate(NAMES):
        client_factory(ctl.endpoint, name, tasks=scaffold_site(i))
    ctl.wait_for_clients(len(NAMES))
    x = {k: v.astype(np.float64) for k, v in ctl.weights.items()}
    c = {k: np.zeros_like(v) for k, v in x.items()}
    workflow = Scaffold()
    records = ctl.run(4, workflow, sample=3, sample_seed=11)
    for record in records:  # the reference, round by round, on the clients the run picked
        picked = [NAMES.index(name) for name in record.sampled]
        dy = [{k: (i + 1) * (0.1 - c[k]) for k in x} for i in picked]
        dc = [{k: 0.01 * (i + 1) - c[k] / 2 for k in x} for i in picked]
        x = {k: x[k] + sum(d[k] for d in dy) / len(picked) for k in x}
        c = {k: c[k] + sum(d[k] for d in dc) / len(NAMES) for k in x}
    assert all(r.ok and len(r.sampled) == 3 for r in records)
    for k in x:
        np.testing.assert_allclose(ctl.weights[k], x[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(workflow.control[k], c[k], rtol=1e-5, atol=1e-7)


def test_runs_on_one_controller_with_one_seed_train_the_same_clients_round_by_round(controller_factory, client_factory):
    """Comparing algorithms on one controller: the second run's round k trains the clients
    the first run's round k trained (the seed goes with the round within the run)."""
    ctl = room(controller_factory, client_factory)
    first = ctl.run(4, FedAvg(), sample=3, sample_seed=5)
    second = ctl.run(4, nbfl.make_workflow("fedprox"), sample=3, sample_seed=5)
    assert [r.round for r in second] == [5, 6, 7, 8]  # rounds count over the controller's life
    assert [r.sampled for r in second] == [r.sampled for r in first]
