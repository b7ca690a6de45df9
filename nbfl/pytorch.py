"""What a notebook needs to federate a torch model, in one import (it imports torch):
the course's models, a model's weights as nbfl sends them and back, evaluation, and the
array trainer that a :class:`~nbfl.Client` trains with."""

from .participant.models import DigitsMLP, SimpleNetwork
from .participant.trainers import ArrayTrainer, evaluate_model, evaluator
from .protocol.torch_adapter import get_weights, set_weights

__all__ = ["ArrayTrainer", "DigitsMLP", "SimpleNetwork", "evaluate_model", "evaluator", "get_weights", "set_weights"]
