"""Server optimizers for FedOpt (Reddi et al., 2021, "Adaptive Federated Optimization").

The averaged client update is treated as a gradient step the clients suggest: with
``g`` the global model and ``m`` the weighted mean of the clients' models, the
pseudo-gradient is ``g - m``. A server optimizer steps ``g`` along it with its own
learning rate and state (momentum, second moments) that persists across rounds, so
one optimizer object must live as long as the run.

``ServerSGD(lr=1, momentum=0)`` gives ``g - (g - m) = m``: plain FedAvg, exactly.
The step is computed per tensor in float64 and cast back, which keeps that identity
exact for float32 models; the state (one or two buffers) is float64 too, so it costs
8 or 16 bytes per parameter on the controller, kept for the whole run.
Non-float tensors (e.g. BatchNorm's step counter) take the mean as it is.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from numpy.typing import DTypeLike

from ..protocol.weights import Weights


class ServerOptimizer:
    """One ``step(global, mean) -> new global`` per round; subclasses define the update direction."""

    name = "server"

    def __init__(self, lr: float):
        if not lr > 0:
            raise ValueError(f"server learning rate must be positive, got {lr}")
        self.lr = lr
        self.state: dict[str, dict[str, np.ndarray]] = {}  # per-tensor buffers, kept across rounds
        self.steps = 0

    def step(self, global_weights: Mapping[str, np.ndarray], mean: Mapping[str, np.ndarray]) -> Weights:
        self.steps += 1
        out: Weights = {}
        for name, g in global_weights.items():
            if g.dtype.kind != "f":
                out[name] = np.asarray(mean[name])
                continue
            g64 = g.astype(np.float64)
            grad = g64 - np.asarray(mean[name], np.float64)
            out[name] = (g64 - self.lr * self.direction(name, grad)).astype(g.dtype)
        return out

    def direction(self, name: str, grad: np.ndarray) -> np.ndarray:
        """The step direction for one tensor (the new global is ``g - lr * direction``)."""
        raise NotImplementedError

    def _buffer(self, name: str, key: str, like: np.ndarray, dtype: DTypeLike, fill: float = 0.0) -> np.ndarray:
        slot = self.state.setdefault(name, {})
        if key not in slot:
            slot[key] = np.full(like.shape, fill, dtype)
        return slot[key]


class ServerSGD(ServerOptimizer):
    """SGD with (heavy-ball) momentum, as ``torch.optim.SGD``: ``v = momentum * v + grad``.

    NVIDIA FLARE's FedOpt default is lr 1.0, momentum 0.6.
    """

    name = "sgd"

    def __init__(self, lr: float = 1.0, momentum: float = 0.6):
        super().__init__(lr)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum

    def direction(self, name: str, grad: np.ndarray) -> np.ndarray:
        if self.momentum == 0:
            return grad
        v = self._buffer(name, "momentum", grad, np.float64)
        v *= self.momentum
        v += grad
        return v


class _Adaptive(ServerOptimizer):
    """FedAdam, FedYogi and FedAdagrad share this: a first moment and a per-coordinate scale.

    ``delta = -grad`` (the mean update); ``m = b1 m + (1 - b1) delta``; ``v`` as each
    subclass says; the step adds ``lr * m / (sqrt(v) + tau)`` (Algorithm 2 of the paper,
    which uses no bias correction).
    """

    def __init__(self, lr: float = 0.1, beta1: float = 0.9, beta2: float = 0.99, tau: float = 1e-3):
        super().__init__(lr)
        self.beta1, self.beta2, self.tau = beta1, beta2, tau

    def direction(self, name: str, grad: np.ndarray) -> np.ndarray:
        m = self._buffer(name, "m", grad, np.float64)
        v = self._buffer(name, "v", grad, np.float64, fill=self.tau**2)
        m *= self.beta1
        m += (1 - self.beta1) * grad  # a step along m adds the mean update, as the paper's -grad
        self.second_moment(v, grad * grad)
        return m / (np.sqrt(v) + self.tau)

    def second_moment(self, v: np.ndarray, grad2: np.ndarray) -> None:
        raise NotImplementedError


class ServerAdam(_Adaptive):
    name = "adam"

    def second_moment(self, v: np.ndarray, grad2: np.ndarray) -> None:
        v *= self.beta2
        v += (1 - self.beta2) * grad2


class ServerYogi(_Adaptive):
    """Yogi's additive update grows or shrinks ``v`` by at most ``(1 - b2) grad^2``."""

    name = "yogi"

    def second_moment(self, v: np.ndarray, grad2: np.ndarray) -> None:
        v -= (1 - self.beta2) * grad2 * np.sign(v - grad2)


class ServerAdagrad(_Adaptive):
    name = "adagrad"

    def second_moment(self, v: np.ndarray, grad2: np.ndarray) -> None:
        v += grad2


OPTIMIZERS = {cls.name: cls for cls in (ServerSGD, ServerAdam, ServerYogi, ServerAdagrad)}
