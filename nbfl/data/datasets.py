"""Datasets that need no download: scikit-learn's digits, and CIFAR-10 from local files."""

from __future__ import annotations

import numpy as np


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """8x8 digits (1,797 images, shipped with scikit-learn) as float32 in [0, 1].

    Returns ``x_train, y_train, x_test, y_test``; the split is stratified and seeded so
    every process agrees on it. The controller evaluates on the test part; clients
    partition the train part.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[: int(round(test_fraction * np.sum(y == c)))] for c in range(10)]
    )
    mask = np.zeros(len(y), bool)
    mask[test] = True
    return x[~mask], y[~mask], x[mask], y[mask]
