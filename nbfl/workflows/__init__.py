"""Workflows decide what a round sends and how results are combined."""

from .scatter_gather import FedAvg, RoundFailed, RoundStopped

__all__ = ["FedAvg", "RoundFailed", "RoundStopped"]
