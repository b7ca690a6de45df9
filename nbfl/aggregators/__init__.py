"""Aggregators combine client updates into one, as they arrive."""

from .fedavg import WeightedMean

__all__ = ["WeightedMean"]
