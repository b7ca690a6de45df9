"""Datasets that need no download: the 8x8 digits, shipped in this folder.

``digits.npz`` holds scikit-learn's ``load_digits()`` (the UCI optdigits test set) as
uint8, written once by ``scripts/make_digits.py``; reading it here needs numpy only, so
a participant's install without scikit-learn (or torch) trains on the same data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DIGITS = Path(__file__).with_name("digits.npz")


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 images as ``(data, target)``: ``data`` (1797, 64) uint8 counts 0..16, ``target`` uint8 0..9."""
    with np.load(DIGITS) as npz:
        return npz["data"], npz["target"]


def load_digits_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits as float32 in [0, 1] and int64 labels.

    Returns ``x_train, y_train, x_test, y_test``; the split is stratified and seeded so
    every process agrees on it. The controller evaluates on the test part; clients
    partition the train part.
    """
    data, target = load_digits()
    x = (data / 16.0).astype(np.float32)
    y = target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[: int(round(test_fraction * np.sum(y == c)))] for c in range(10)]
    )
    mask = np.zeros(len(y), bool)
    mask[test] = True
    return x[~mask], y[~mask], x[mask], y[mask]
