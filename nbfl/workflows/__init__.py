"""Workflows decide what a round sends and how results are combined."""

from .scatter_gather import FedAvg

__all__ = ["FedAvg"]
