"""Data for demos and tests: datasets that ship or are generated, and seeded partitioners."""

from .datasets import load_digits_split
from .partition import classes, dirichlet, iid, partition, quantity, shards

__all__ = ["classes", "dirichlet", "iid", "load_digits_split", "partition", "quantity", "shards"]
