"""Seeded partitioners: the same seed gives every process the same split.

Each returns one index array per client. Clients in separate processes call the
same partitioner with the same seed and keep only their own part, so no data moves.
"""

from __future__ import annotations

import numpy as np


def iid(n_samples: int, n_clients: int, seed: int = 0) -> list[np.ndarray]:
    """A random permutation cut into ``n_clients`` near-equal parts."""
    order = np.random.default_rng(seed).permutation(n_samples)
    return [np.sort(part) for part in np.array_split(order, n_clients)]


def dirichlet(labels: np.ndarray, n_clients: int, alpha: float, seed: int = 0, min_size: int = 10) -> list[np.ndarray]:
    """Label skew: each class is split across clients in proportions drawn from Dir(alpha).

    Small ``alpha`` (0.1) gives clients that see few classes; large (100) is near IID.
    Draws repeat until every client has at least ``min_size`` samples.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    labels = np.asarray(labels)
    if n_clients * min_size > len(labels):
        raise ValueError(f"{len(labels)} samples cannot give {n_clients} clients {min_size} each")
    rng = np.random.default_rng(seed)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(n_clients)]
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            cuts = (np.cumsum(rng.dirichlet([alpha] * n_clients)) * len(idx)).astype(int)[:-1]
            for part, chunk in zip(parts, np.split(idx, cuts)):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.array(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"no Dirichlet({alpha}) split gave every client {min_size} samples in 1000 draws")


def shards(labels: np.ndarray, n_clients: int, shards_per_client: int = 2, seed: int = 0) -> list[np.ndarray]:
    """McMahan et al.'s pathological split: sort by label, cut into shards, deal them out."""
    order = np.argsort(np.asarray(labels), kind="stable")
    pieces = np.array_split(order, n_clients * shards_per_client)
    dealt = np.random.default_rng(seed).permutation(len(pieces))
    return [np.sort(np.concatenate([pieces[j] for j in dealt[i::n_clients]])) for i in range(n_clients)]


def classes(labels: np.ndarray, n_clients: int, k: int = 2, seed: int = 0) -> list[np.ndarray]:
    """Each client holds exactly ``k`` classes (Li et al.'s "#C=k" label skew): the classes,
    in a seeded order, are dealt ``k`` at a time round the clients, and each class's
    samples are shared evenly, in a seeded order, among the clients that hold it."""
    labels = np.asarray(labels)
    names = np.unique(labels)
    if not 1 <= k <= len(names):
        raise ValueError(f"k must be between 1 and the {len(names)} classes, got {k}")
    if n_clients * k < len(names):
        raise ValueError(f"{n_clients} clients of {k} classes each cannot hold all {len(names)} classes")
    rng = np.random.default_rng(seed)
    order = names[rng.permutation(len(names))]
    held = [{order[(i * k + j) % len(names)] for j in range(k)} for i in range(n_clients)]
    parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
    for cls in names:
        holders = [i for i, h in enumerate(held) if cls in h]
        for i, chunk in zip(holders, np.array_split(rng.permutation(np.flatnonzero(labels == cls)), len(holders))):
            parts[i].append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def quantity(n_samples: int, n_clients: int, beta: float = 0.5, seed: int = 0, min_size: int = 10) -> list[np.ndarray]:
    """Quantity skew: clients' shares of a random permutation are drawn from Dir(beta), so
    small ``beta`` gives a few large clients and many small ones (each at least ``min_size``);
    labels stay as mixed as the data. Draws repeat until every client has ``min_size``."""
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if n_clients * min_size > n_samples:
        raise ValueError(f"{n_samples} samples cannot give {n_clients} clients {min_size} each")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_samples)
    for _ in range(1000):
        cuts = (np.cumsum(rng.dirichlet([beta] * n_clients)) * n_samples).astype(int)[:-1]
        parts = np.split(order, cuts)
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(p) for p in parts]
    raise ValueError(f"no Dirichlet({beta}) split of sizes gave every client {min_size} samples in 1000 draws")


def partition(spec: str, labels: np.ndarray, n_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Parse ``iid``, ``dirichlet:0.5``, ``shards:2``, ``classes:2`` or ``quantity:0.5`` (the
    CLI's and magics' syntax) and split ``labels`` (a user's own array, or a built-in
    dataset's) among ``n_clients``."""
    name, _, arg = spec.partition(":")
    if name == "iid":
        return iid(len(labels), n_clients, seed)
    if name == "dirichlet":
        return dirichlet(labels, n_clients, float(arg or 0.5), seed)
    if name == "shards":
        return shards(labels, n_clients, int(arg or 2), seed)
    if name == "classes":
        return classes(labels, n_clients, int(arg or 2), seed)
    if name == "quantity":
        return quantity(len(labels), n_clients, float(arg or 0.5), seed)
    raise ValueError(f"unknown partition {spec!r}: use iid, dirichlet:ALPHA, shards:N, classes:K or quantity:BETA")
