"""Aggregators combine client updates into one, as they arrive: numpy maths for the
controller's workflows (weighted means, server optimizers, robust rules), in the
controller's process. Imports only :mod:`nbfl.protocol`."""

from .fedavg import WeightedMean

__all__ = ["WeightedMean"]
