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


def partition(spec: str, labels: np.ndarray, n_clients: int, seed: int = 0) -> list[np.ndarray]:
    """Parse ``iid``, ``dirichlet:0.5`` or ``shards:2`` (the CLI's and magics' syntax)."""
    name, _, arg = spec.partition(":")
    if name == "iid":
        return iid(len(labels), n_clients, seed)
    if name == "dirichlet":
        return dirichlet(labels, n_clients, float(arg or 0.5), seed)
    if name == "shards":
        return shards(labels, n_clients, int(arg or 2), seed)
    raise ValueError(f"unknown partition {spec!r}: use iid, dirichlet:ALPHA or shards:N")
