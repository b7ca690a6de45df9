"""The digits ship inside nbfl: the same numbers as scikit-learn's, read with numpy alone."""

import numpy as np
import pytest

from nbfl.data import load_digits_split
from nbfl.data.datasets import DIGITS, load_digits


def test_the_shipped_digits_are_scikit_learns():
    datasets = pytest.importorskip("sklearn.datasets")
    theirs = datasets.load_digits()
    data, target = load_digits()
    assert data.dtype == target.dtype == np.uint8 and data.shape == (1797, 64)
    np.testing.assert_array_equal(data, theirs.data)
    np.testing.assert_array_equal(target, theirs.target)
    assert DIGITS.stat().st_size < 100_000  # compressed uint8: small enough to ship in the wheel


def test_the_split_is_float32_in_0_1_and_int64_labels():
    x, y, x_test, y_test = load_digits_split(seed=0)
    assert x.dtype == x_test.dtype == np.float32 and y.dtype == y_test.dtype == np.int64
    assert len(y) + len(y_test) == 1797 and x.shape[1] == 64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert np.bincount(y_test).min() >= 30  # stratified: every class in the test part


def test_the_generated_problem_is_sized_for_the_clients_and_the_same_in_every_process():
    from nbfl.data import load_split, load_synthetic_split

    x, y, x_test, y_test = load_synthetic_split(1000, seed=4)
    assert x.shape == (60_000, 64) and x.dtype == x_test.dtype == np.float32 and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(10)) and len(y_test) == 2000
    again = load_split("synthetic", 1000, 4)
    np.testing.assert_array_equal(again[0], x)
    # the test set does not depend on how many clients there are: a controller evaluates without knowing
    np.testing.assert_array_equal(load_synthetic_split(7, seed=4)[2], x_test)
    assert not np.array_equal(load_synthetic_split(1000, seed=5)[0], x)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_split("cifar", 10)
