"""Data for demos and tests: datasets that ship or are generated, and seeded partitioners."""

from .datasets import load_digits_split
from .partition import dirichlet, iid, partition, shards

__all__ = ["dirichlet", "iid", "load_digits_split", "partition", "shards"]
