import numpy as np
import pytest

from nbfl.data import classes, dirichlet, iid, load_digits_split, partition, quantity, shards

LABELS = np.repeat(np.arange(10), 50)


@pytest.mark.parametrize("spec", ["iid", "dirichlet:0.5", "dirichlet:0.1", "shards:2", "classes:2", "quantity:0.5"])
def test_partitions_are_disjoint_complete_and_reproducible(spec):
    parts = partition(spec, LABELS, 8, seed=3)
    assert len(parts) == 8
    joined = np.concatenate(parts)
    assert len(joined) == len(LABELS) and len(np.unique(joined)) == len(LABELS)
    again = partition(spec, LABELS, 8, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again))


def test_dirichlet_small_alpha_skews_labels_more_than_large():
    def mean_classes(alpha):
        return np.mean([len(np.unique(LABELS[p])) for p in dirichlet(LABELS, 8, alpha, seed=0, min_size=5)])

    assert mean_classes(0.1) < mean_classes(100.0)
    assert mean_classes(100.0) == 10


def test_dirichlet_gives_every_client_min_size():
    assert min(len(p) for p in dirichlet(LABELS, 10, 0.1, seed=1, min_size=10)) >= 10


def test_shards_give_each_client_few_labels():
    assert all(len(np.unique(LABELS[p])) <= 2 for p in shards(LABELS, 5, 2, seed=0))


def test_classes_give_each_client_exactly_k_classes_and_use_them_all():
    parts = classes(LABELS, 8, 3, seed=1)
    assert [len(np.unique(LABELS[p])) for p in parts] == [3] * 8
    assert set(np.unique(LABELS[np.concatenate(parts)])) == set(range(10))
    with pytest.raises(ValueError, match="cannot hold all 10 classes"):
        classes(LABELS, 3, 2)


def test_quantity_skew_varies_the_sizes_and_keeps_the_labels_mixed():
    small, large = ([len(p) for p in quantity(500, 10, beta, seed=2, min_size=5)] for beta in (0.3, 100.0))
    assert min(small) >= 5 and sum(small) == sum(large) == 500
    assert max(small) / min(small) > max(large) / min(large)  # a small beta: a few large clients, many small
    assert max(large) / min(large) < 2  # a large beta: near equal
    with pytest.raises(ValueError, match="positive"):
        quantity(500, 10, 0.0)


def test_iid_sizes_are_balanced():
    sizes = [len(p) for p in iid(103, 4, seed=0)]
    assert max(sizes) - min(sizes) <= 1


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="unknown partition"):
        partition("zipf:2", LABELS, 4)
    with pytest.raises(ValueError, match="positive"):
        dirichlet(LABELS, 4, 0.0)


def test_digits_split_is_stratified_and_scaled():
    x_train, y_train, x_test, y_test = load_digits_split()
    assert x_train.shape[1] == 64 and len(x_train) + len(x_test) == 1797
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert set(np.unique(y_test)) == set(range(10))
