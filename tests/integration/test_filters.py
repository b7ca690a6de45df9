"""Privacy filters: their arithmetic, and the pipeline over real sockets."""

import numpy as np
import pytest

import nbfl
from nbfl.filters import FilterContext, FilterError, build
from nbfl.filters.dp import GaussianPrivacy
from nbfl.filters.exclude import ExcludeVars
from nbfl.filters.percentile import PercentilePrivacy
from nbfl.filters.svt import SVTPrivacy
from nbfl.workflows import FedAvg

from helpers import small_model


def ctx(reference, meta=None):
    return FilterContext("train", 1, "site", reference=reference, meta=dict(meta or {}))


def norm(tensors):
    return float(np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in tensors.values())))


def test_gaussian_clips_the_update_to_the_bound():
    ref = {"a": np.zeros(3, np.float32), "b": np.zeros(4, np.float32)}
    big = {"a": np.array([3.0, 4.0, 0.0], np.float32), "b": np.zeros(4, np.float32)}  # norm 5
    out, kind = GaussianPrivacy(clip=1.0, noise_multiplier=0.0)(big, "WEIGHTS", ctx(ref))
    assert kind == "WEIGHT_DIFF" and norm(out) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(out["a"], [0.6, 0.8, 0.0], rtol=1e-6)  # direction kept
    small = {"a": np.array([0.3, 0.0, 0.0], np.float32), "b": np.zeros(4, np.float32)}
    out, _ = GaussianPrivacy(clip=1.0, noise_multiplier=0.0)(small, "WEIGHTS", ctx(ref))
    np.testing.assert_allclose(out["a"], [0.3, 0, 0], rtol=1e-6)  # inside the bound: untouched
    assert big["a"][0] == 3.0  # the input is never written


def test_gaussian_noise_has_the_calibrated_scale():
    ref = {"w": np.zeros(400_000, np.float64)}
    out, _ = GaussianPrivacy(clip=2.0, noise_multiplier=0.5, seed=1)(ref, "WEIGHTS", ctx(ref))
    # sigma = 0.5 * 2 = 1; the sample std of 4e5 draws is within 1% of it, the mean within 4 sigma/sqrt(n)
    assert np.std(out["w"]) == pytest.approx(1.0, rel=0.01)
    assert abs(np.mean(out["w"])) < 4 / np.sqrt(400_000)


def test_gaussian_drops_what_would_describe_the_data():
    ref = small_model()
    meta = {"metrics": {"loss": 0.1}, "num_samples": 17, "NUM_STEPS_CURRENT_ROUND": 3, "other": 1}
    c = ctx(ref, meta)
    GaussianPrivacy()(ref, "WEIGHTS", c)
    assert c.meta == {"other": 1}


def test_exclude_keeps_matching_variables_home():
    ref = {"fc1.weight": np.zeros(2), "fc2.weight": np.zeros(2), "fc2.bias": np.zeros(1)}
    new = {"fc1.weight": np.ones(2), "fc2.weight": np.ones(2), "fc2.bias": np.ones(1)}
    out, kind = ExcludeVars(["fc2.*"])(new, "WEIGHTS", ctx(ref))
    assert kind == "WEIGHT_DIFF" and out["fc1.weight"].tolist() == [1, 1]
    assert not out["fc2.weight"].any() and not out["fc2.bias"].any()


def test_percentile_shares_only_large_coordinates_clipped():
    ref = {"w": np.zeros(10)}
    new = {"w": np.array([0.001, -0.002, 0.003, 0.004, -0.005, 0.006, 0.007, -0.008, 0.05, -0.09])}
    out, _ = PercentilePrivacy(percentile=50, gamma=0.01)(new, "WEIGHTS", ctx(ref))
    # the median |d| is 0.0055: the five smaller are zeroed, the rest clipped to +-0.01
    np.testing.assert_allclose(out["w"], [0, 0, 0, 0, 0, 0.006, 0.007, -0.008, 0.01, -0.01])


def test_svt_releases_at_most_a_fraction_close_to_the_clipped_values():
    rng = np.random.default_rng(0)
    ref = {"w": np.zeros(1000)}
    new = {"w": rng.uniform(-1, 1, 1000)}
    out, _ = SVTPrivacy(fraction=0.05, epsilon=1e6, gamma=0.5, tau=0.0, seed=3)(new, "WEIGHTS", ctx(ref))
    released = np.flatnonzero(out["w"])
    assert 0 < len(released) <= 50
    # with a huge budget the noise is tiny: each released value is the clipped update
    np.testing.assert_allclose(out["w"][released], np.clip(new["w"][released], -0.5, 0.5), atol=1e-3)


@pytest.mark.parametrize(
    "specs, message",
    [
        ([{"name": "nope"}], "unknown filter"),
        ([{"name": "dp", "clip": -1}], "clip must be positive"),
        ([{"clip": 1}], "needs a 'name'"),
        ({"name": "dp"}, "must be a list"),
        ([{"name": "dp", "code": "import os"}], "unexpected keyword"),
    ],
)
def test_bad_specs_are_refused(specs, message):
    with pytest.raises(FilterError, match=message):
        build(specs)


def plus_one(weights, ctx):
    return nbfl.Update({k: v + 1 for k, v in weights.items()}, num_samples=5, metrics={"loss": 0.5})


def test_controller_requested_dp_runs_on_every_client(controller_factory, client_factory):
    ctl = controller_factory({"w": np.zeros(4, np.float32)})
    for name in ("a", "b"):
        client_factory(ctl.endpoint, name, tasks={"train": plus_one})
    ctl.wait_for_clients(2)
    spec = {"name": "dp", "clip": 1.0, "noise_multiplier": 0.0}
    record = ctl.run(1, filters=[spec])[0]
    assert record.status == "ok"
    # each update (+1 on 4 coordinates, norm 2) was clipped to norm 1 on its site
    np.testing.assert_allclose(ctl.weights["w"], 0.5, rtol=1e-6)
    assert record.filters == {"a": [spec], "b": [spec]}
    assert "loss" not in record.clients["a"]  # the metrics did not leave the sites
    with pytest.raises(FilterError, match="unknown filter"):
        ctl.run(1, filters=[{"name": "rot13"}])


def test_a_client_policy_cannot_be_turned_off(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    before = {k: v.copy() for k, v in ctl.weights.items()}
    client_factory(ctl.endpoint, "hospital", tasks={"train": plus_one}, filters=[ExcludeVars("b")])
    ctl.wait_for_clients(1)
    record = ctl.run(1)[0]  # the controller asks for nothing
    np.testing.assert_array_equal(ctl.weights["b"], before["b"])  # "b" never left the site
    np.testing.assert_allclose(ctl.weights["w"], before["w"] + 1, rtol=1e-6)
    assert record.filters == {"hospital": [{"name": "exclude", "names": ["b"]}]}


def test_a_client_refuses_a_filter_it_does_not_know_and_says_why(controller_factory, client_factory):
    ctl = controller_factory(small_model())
    client_factory(ctl.endpoint, "a", tasks={"train": plus_one})
    ctl.wait_for_clients(1)
    record = ctl.run(1, FedAvg(task_meta={"filters": [{"name": "homebrew"}]}))[0]
    assert record.status == nbfl.protocol.records.RoundStatus.FAILED
    assert "unknown filter 'homebrew'" in record.failed["a"]


def test_the_ledger_shows_the_epsilon_clients_spent(controller_factory, client_factory):
    from nbfl.filters.accountant import epsilon_for
    from nbfl.notebook.dashboard import history_html

    ctl = controller_factory({"w": np.zeros(4, np.float32)})
    client_factory(ctl.endpoint, "a", tasks={"train": plus_one})
    client_factory(ctl.endpoint, "b", tasks={"train": plus_one}, filters=[GaussianPrivacy(1.0, 2.0)])
    ctl.wait_for_clients(2)
    records = ctl.run(3, filters=[{"name": "dp", "clip": 1.0, "noise_multiplier": 4.0}])
    # a: three releases at z = 4; b: three at z = 4 and three at z = 2 (its own policy on top)
    expected_a = epsilon_for(4.0 / 2, 1.0, 3, 1e-5)
    privacy = records[-1].privacy
    assert privacy["clients"]["a"] == pytest.approx(expected_a, rel=1e-9)
    assert privacy["clients"]["b"] > epsilon_for(2.0 / 2, 1.0, 3, 1e-5) > expected_a
    assert privacy["epsilon"] == privacy["clients"]["b"] and privacy["delta"] == 1e-5
    assert records[0].privacy["clients"]["a"] < privacy["clients"]["a"]  # it grows round by round
    assert f"epsilon {privacy['epsilon']:.3g} at delta 1e-05" in history_html(ctl.history)


def test_dp_sgd_trains_through_opacus_and_reports_its_epsilon(controller_factory, client_factory):
    pytest.importorskip("opacus")
    import torch

    from nbfl.data import load_digits_split
    from nbfl.filters.accountant import epsilon_for
    from nbfl.participant.dp_sgd import DPSGD
    from nbfl.participant.models import DigitsMLP
    from nbfl.participant.trainers import ArrayTrainer, evaluator

    x, y, x_test, y_test = load_digits_split()
    torch.manual_seed(0)
    model = DigitsMLP(32)
    ctl = controller_factory(model, evaluate=evaluator(model, x_test, y_test))
    before = evaluator(model, x_test, y_test)(ctl.weights)["accuracy"]
    dp = DPSGD(noise_multiplier=1.0, max_grad_norm=1.0)
    trainer = ArrayTrainer(DigitsMLP(32), x[:400], y[:400], epochs=2, lr=0.1, batch_size=40, dp_sgd=dp, device="cpu")
    client_factory(ctl.endpoint, "site", trainer)
    ctl.wait_for_clients(1)
    records = ctl.run(3)
    assert all(r.status == "ok" for r in records)
    spent = records[-1].clients["site"]["dp_sgd_epsilon"]
    # Poisson-sampled batches of rate 40/400, about 10 steps an epoch: the accountant's epsilon for the steps taken
    assert spent == pytest.approx(epsilon_for(1.0, 0.1, dp.accountant.steps, 1e-5), rel=1e-9)
    assert 20 <= dp.accountant.steps <= 90 and records[0].clients["site"]["dp_sgd_epsilon"] < spent
    assert records[-1].metrics["accuracy"] > before + 0.2  # it still learns
    assert not any(name.startswith("_module") for name in ctl.weights)  # Opacus' wrapper never leaks into names
    record = ctl.run(1, nbfl.workflows.FedProx(mu=0.1))[0]
    assert "does not combine with FedProx" in record.failed["site"]
