"""Federated statistics over real sockets: the combined numbers are numpy's on the pooled data."""

import numpy as np
import pytest

from nbfl.participant.statistics import local_statistics, statistics_task
from nbfl.protocol.names import DataKind
from nbfl.workflows import FederatedStatistics

MODEL = {"w": np.zeros(1, np.float32)}


def site_data(seed: int, samples: int, features: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(loc=rng.uniform(-5, 5, features), scale=rng.uniform(0.5, 3, features), size=(samples, features))


def run_statistics(controller_factory, client_factory, sites, policies=None, **options):
    """One statistics round over clients named after ``sites``; returns (workflow, record)."""
    ctl = controller_factory(MODEL)
    for name, x in sites.items():
        client_factory(ctl.endpoint, name, tasks={"statistics": statistics_task(x, (policies or {}).get(name, 0))})
    workflow = FederatedStatistics(**options)
    record = ctl.run(1, workflow, min_clients=len(sites), timeout=30)[0]
    np.testing.assert_array_equal(ctl.weights["w"], MODEL["w"])  # the model is untouched
    return workflow, record


def assert_pooled(result, pooled, bins, edges_from_pooled=True):
    """Every statistic equals numpy's on ``pooled``, to 1e-9. The edges are numpy's too
    unless a client that set the range in pass 1 dropped out in pass 2."""
    close = {"rtol": 1e-9, "atol": 1e-9}
    np.testing.assert_array_equal(result["count"], np.full(pooled.shape[1], len(pooled)))
    np.testing.assert_allclose(result["mean"], pooled.mean(axis=0), **close)
    np.testing.assert_allclose(result["std"], pooled.std(axis=0), **close)
    np.testing.assert_allclose(result["var"], pooled.var(axis=0), **close)
    np.testing.assert_array_equal(result["min"], pooled.min(axis=0))
    np.testing.assert_array_equal(result["max"], pooled.max(axis=0))
    assert result["edges"].shape == (pooled.shape[1], bins + 1)
    for j, column in enumerate(pooled.T):
        if edges_from_pooled:
            np.testing.assert_allclose(result["edges"][j], np.histogram_bin_edges(column, bins), **close)
        np.testing.assert_array_equal(result["histogram"][j], np.histogram(column, bins=result["edges"][j])[0])
    assert result["histogram"].sum(axis=1).tolist() == [len(pooled)] * pooled.shape[1]


def test_statistics_match_numpy_on_pooled_data(controller_factory, client_factory):
    sites = {"a": site_data(1, 40, 4), "b": site_data(2, 75, 4), "c": site_data(3, 120, 4)}
    workflow, record = run_statistics(controller_factory, client_factory, sites, bins=7, features=["p", "q", "r", "s"])
    assert record.status == "ok" and record.workflow == "statistics"
    assert_pooled(workflow.result, np.concatenate(list(sites.values())), bins=7)
    assert sorted(workflow.result["clients"]) == ["a", "b", "c"]
    assert workflow.result["withheld"] == {} and workflow.result["features"] == ["p", "q", "r", "s"]
    noted = record.notes["statistics"]  # the round's record holds the same, as plain lists
    assert noted["count"] == [235] * 4 and noted["mean"] == workflow.result["mean"].tolist()
    assert len(noted["histogram"]) == 4 and len(noted["histogram"][0]) == 7


def test_a_client_below_the_minimum_count_is_withheld(controller_factory, client_factory):
    sites = {"big": site_data(4, 60, 2), "small": site_data(5, 6, 2), "other": site_data(6, 30, 2)}
    workflow, record = run_statistics(controller_factory, client_factory, sites, min_count=10)
    assert workflow.result["withheld"] == {"small": "6 samples, fewer than the minimum count of 10"}
    assert sorted(workflow.result["clients"]) == ["big", "other"]
    assert_pooled(workflow.result, np.concatenate([sites["big"], sites["other"]]), bins=10)
    assert record.notes["statistics"]["withheld"] == workflow.result["withheld"]


def test_a_client_policy_above_the_controllers_wins(controller_factory, client_factory):
    sites = {"strict": site_data(7, 25, 3), "a": site_data(8, 50, 3), "b": site_data(9, 15, 3)}
    workflow, _ = run_statistics(controller_factory, client_factory, sites, policies={"strict": 40}, min_count=5)
    assert workflow.result["withheld"] == {"strict": "25 samples, fewer than the minimum count of 40"}
    assert_pooled(workflow.result, np.concatenate([sites["a"], sites["b"]]), bins=10)


def test_the_round_fails_when_every_client_withholds(controller_factory, client_factory):
    sites = {"a": site_data(10, 3, 2), "b": site_data(11, 4, 2)}
    workflow, record = run_statistics(controller_factory, client_factory, sites, min_count=10)
    assert record.status == "failed" and record.reason.startswith("no client contributed statistics")
    assert "a: 3 samples" in record.reason and workflow.result == {}


def test_malformed_results_are_rejected_and_the_others_counted(controller_factory, client_factory):
    good = site_data(12, 50, 3)

    def nan_sum(tensors, ctx):
        answer = statistics_task(site_data(13, 50, 3))(tensors, ctx)
        if ctx.meta["pass"] == 1:
            answer.weights["sum"][1] = np.nan
        return answer

    def negative_histogram(tensors, ctx):
        answer = statistics_task(site_data(14, 50, 3))(tensors, ctx)
        if ctx.meta["pass"] == 2:
            answer.weights["histogram"][0, 0] = -1
        return answer

    def two_features(tensors, ctx):
        return statistics_task(site_data(15, 50, 2))(tensors, ctx)

    ctl = controller_factory(MODEL)
    workflow = FederatedStatistics(features=["x", "y", "z"])
    client_factory(ctl.endpoint, "good", tasks={"statistics": statistics_task(good)})
    for name, fn in {"nan": nan_sum, "negative": negative_histogram, "narrow": two_features}.items():
        client_factory(ctl.endpoint, name, tasks={"statistics": fn})
    record = ctl.run(1, workflow, min_clients=4, timeout=30)[0]
    assert record.status == "ok" and workflow.result["clients"] == ["good"]
    assert "sum holds NaN" in record.failed["nan"]
    assert "histogram counts must be whole numbers, not negative" in record.failed["negative"]
    assert "shape (2,), expected (3,)" in record.failed["narrow"]
    # "negative" counted in pass 1 (the mean sent, the edges) but not in the result: the
    # variance is moved to the mean of "good" alone, the edges still span both
    assert_pooled(workflow.result, good, bins=10, edges_from_pooled=False)
    both = np.concatenate([good, site_data(14, 50, 3)])
    np.testing.assert_allclose(workflow.result["edges"][:, [0, -1]], np.c_[both.min(axis=0), both.max(axis=0)])


def test_local_statistics_both_passes_and_the_threshold():
    x = site_data(16, 20, 3)
    first, meta = local_statistics(x, {}, {"pass": 1, "min_count": 5})
    assert meta == {} and sorted(first) == ["count", "max", "min", "sum"]
    np.testing.assert_array_equal(first["count"], [20.0, 20.0, 20.0])
    np.testing.assert_allclose(first["sum"], x.sum(axis=0), rtol=1e-12)
    mean, edges = np.zeros(3), np.tile(np.linspace(-10, 10, 5), (3, 1))
    second, _ = local_statistics(x, {"mean": mean, "edges": edges}, {"pass": 2})
    np.testing.assert_allclose(second["sum_sq_dev"], (x**2).sum(axis=0), rtol=1e-12)
    assert second["histogram"].tolist() == [np.histogram(x[:, j], bins=edges[j])[0].tolist() for j in range(3)]
    # the controller may raise the client's threshold, never lower it
    assert local_statistics(x, {}, {"pass": 1, "min_count": 21})[1]["withheld"] == (
        "20 samples, fewer than the minimum count of 21"
    )
    tensors, meta = local_statistics(x, {}, {"pass": 1, "min_count": 0}, min_count=30)
    assert tensors == {} and meta == {
        "withheld": "20 samples, fewer than the minimum count of 30",
        "num_samples": 20,
        "min_count": 30,
    }


def test_statistics_task_says_why_it_withholds():
    class Ctx:
        meta = {"pass": 1, "min_count": 50}

    answer = statistics_task(site_data(17, 20, 2))({}, Ctx())
    assert answer.kind == DataKind.STATISTICS and answer.weights == {}
    assert answer.meta["withheld"] == "20 samples, fewer than the minimum count of 50"


@pytest.mark.parametrize(
    "request_, meta, message",
    [
        ({"mean": np.zeros(2), "edges": np.zeros((3, 5))}, {"pass": 2}, r"mean has shape \(2,\); this site has 3"),
        ({"mean": np.zeros(3), "edges": np.zeros((2, 5))}, {"pass": 2}, r"edges has shape \(2, 5\)"),
        ({"mean": np.zeros(3), "edges": np.zeros((3, 1))}, {"pass": 2}, "at least one bin"),
        ({"mean": np.zeros(3)}, {"pass": 2}, "missing: edges"),
        ({"mean": np.full(3, np.nan), "edges": np.zeros((3, 4))}, {"pass": 2}, "must be finite"),
        ({"mean": np.zeros(3), "edges": np.tile([3.0, 2.0, 1.0], (3, 1))}, {"pass": 2}, "must increase"),
        ({}, {"pass": 3}, r"meta\['pass'\] must be 1 or 2"),
        ({}, {"pass": 1, "min_count": -1}, "non-negative integer"),
    ],
)
def test_local_statistics_refuses_a_malformed_request(request_, meta, message):
    with pytest.raises(ValueError, match=message):
        local_statistics(site_data(18, 20, 3), request_, meta)


def test_local_data_must_be_a_finite_matrix():
    with pytest.raises(ValueError, match="impute or drop"):
        statistics_task(np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match=r"\(samples, features\) matrix"):
        local_statistics(np.zeros(5), {}, {"pass": 1})
