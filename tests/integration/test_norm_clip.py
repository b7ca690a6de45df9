"""norm_clip (nbfl/workflows/norm_clip.py), a server-side algorithm added as one file:
reachable by name from Python, and over real sockets one client's huge update moves the
global model by at most the bound, while a round of short updates is plain FedAvg."""

import numpy as np
import pytest

import nbfl
from nbfl.workflows import ALGORITHMS, FedAvg, make_workflow
from nbfl.workflows.norm_clip import NormClip, update_norm

from helpers import small_model


def shift(by: float):
    """A task that sends back the model moved by ``by`` in every value."""
    return {"train": lambda weights: nbfl.Update({k: v + by for k, v in weights.items()}, num_samples=10)}


def start(controller_factory, client_factory, shifts: dict[str, float]):
    ctl = controller_factory(small_model())
    for name, by in shifts.items():
        client_factory(ctl.endpoint, name, tasks=shift(by))
    ctl.wait_for_clients(len(shifts))
    return ctl


def test_norm_clip_is_registered_by_its_file_alone():
    assert "norm_clip" in ALGORITHMS
    workflow = make_workflow("norm_clip", bound=0.5)
    assert isinstance(workflow, NormClip) and workflow.bound == 0.5
    with pytest.raises(ValueError, match="bound must be a positive finite number"):
        make_workflow("norm_clip", bound=float("inf"))


def test_one_huge_update_moves_the_model_by_at_most_the_bound(controller_factory, client_factory):
    shifts = {"honest-1": 0.01, "honest-2": -0.01, "honest-3": 0.02, "attacker": 1000.0}
    plain = start(controller_factory, client_factory, shifts)
    clipped = start(controller_factory, client_factory, shifts)
    before = {k: v.copy() for k, v in plain.weights.items()}
    [poisoned] = plain.run(1, FedAvg())
    [record] = clipped.run(1, "norm_clip")  # by name, bound 1.0
    assert poisoned.ok and record.ok
    assert update_norm(plain.weights, before) > 100  # FedAvg: the attacker owns the mean
    assert update_norm(clipped.weights, before) <= 1.0 + 1e-6  # every clipped update is at most 1 long
    assert list(record.notes["norm_clip"]["clipped"]) == ["attacker"]
    assert record.notes["norm_clip"]["clipped"]["attacker"] == pytest.approx(1000.0 * np.sqrt(15), rel=1e-6)


def test_a_round_of_short_updates_is_plain_fedavg(controller_factory, client_factory):
    shifts = {"a": 0.01, "b": -0.02, "c": 0.03}
    plain = start(controller_factory, client_factory, shifts)
    clipped = start(controller_factory, client_factory, shifts)
    plain.run(2, FedAvg())
    [_, record] = clipped.run(2, NormClip(bound=10.0))
    assert record.notes["norm_clip"] == {"bound": 10.0, "clipped": {}}
    for name in plain.weights:
        np.testing.assert_allclose(clipped.weights[name], plain.weights[name], rtol=0, atol=1e-6)
