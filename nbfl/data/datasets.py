"""Datasets that need no download: the 8x8 digits, shipped in this folder, and a
generated problem of the same shape for simulations larger than 1,797 images allow.

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


SYNTHETIC_PER_CLIENT = 60  # training points per client in a generated pool: at least 50 each, as in the FL papers
SYNTHETIC_TEST = 2000
SYNTHETIC_SPREAD = 0.4  # how far apart the class means lie, against unit noise: no model beats about 93%


def load_synthetic_split(
    clients: int, seed: int = 0, per_client: int = SYNTHETIC_PER_CLIENT
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A generated 64-feature, 10-class problem, shaped like the digits (float32, int64 labels)
    and sized for ``clients``: ``per_client`` training points for each, and a test set of
    :data:`SYNTHETIC_TEST` that does not depend on ``clients`` (the controller evaluates on it
    without knowing how many clients there are).

    Each class is a Gaussian with unit noise around a mean drawn from ``seed``; every
    process that asks with the same arguments gets the same arrays, so a simulated client
    keeps only its part. Returns ``x_train, y_train, x_test, y_test``.
    """
    means = np.random.default_rng([seed, 0]).normal(0.0, SYNTHETIC_SPREAD, (10, 64)).astype(np.float32)

    def draw(n: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([seed, stream])
        y = rng.integers(0, 10, n)
        x = rng.standard_normal((n, 64), dtype=np.float32)
        x += means[y]
        return x, y.astype(np.int64)

    return (*draw(clients * per_client, 1), *draw(SYNTHETIC_TEST, 2))


DATASETS = ("digits", "synthetic")


def load_split(data: str, clients: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A built-in dataset by name (:data:`DATASETS`) as ``x_train, y_train, x_test, y_test``;
    ``clients`` sizes the generated one."""
    if data == "digits":
        return load_digits_split(seed=seed)
    if data == "synthetic":
        return load_synthetic_split(clients, seed)
    raise ValueError(f"unknown dataset {data!r}: use {' or '.join(DATASETS)}")
