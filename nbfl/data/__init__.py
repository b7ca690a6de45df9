"""Data for demos and tests: datasets that ship or are generated, and seeded partitioners."""

from .datasets import DATASETS, load_digits_split, load_split, load_synthetic_split
from .partition import classes, dirichlet, iid, partition, quantity, shards

__all__ = [
    "DATASETS",
    "classes",
    "dirichlet",
    "iid",
    "load_digits_split",
    "load_split",
    "load_synthetic_split",
    "partition",
    "quantity",
    "shards",
]
