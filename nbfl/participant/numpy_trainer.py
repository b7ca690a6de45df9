"""The built-in trainer in numpy: the digits MLP where torch is not installed.

A workshop participant's laptop may have only nbfl's core (numpy, pyzmq). This is
:class:`~nbfl.participant.models.DigitsMLP` written out by hand (``fc1`` 64 -> hidden, ReLU, ``fc2``
hidden -> 10, cross-entropy) with the same weight names, shapes and dtype (float32) as
its ``state_dict``, initialised as torch's ``nn.Linear`` is, and trained by the same
SGD with momentum, so its updates average with the torch trainer's into one model.
It trains on the CPU; DP-SGD is torch's only (:mod:`nbfl.participant.dp_sgd`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ..protocol.weights import Weights
from .executor import Signal
from .local_trainer import LocalTrainer

HIDDEN = 64  # DigitsMLP's default


def init_weights(seed: int = 0, hidden: int = HIDDEN) -> Weights:
    """Fresh weights as ``nn.Linear`` draws them, from a seeded numpy generator: weight
    and bias uniform in ``±1/sqrt(fan_in)``."""
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    for layer, (fan_in, fan_out) in {"fc1": (64, hidden), "fc2": (hidden, 10)}.items():
        bound = 1.0 / np.sqrt(fan_in)
        weights[f"{layer}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        weights[f"{layer}.bias"] = rng.uniform(-bound, bound, fan_out).astype(np.float32)
    return weights


def forward(weights: Mapping[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, hidden pre-activation)`` for a batch ``x`` (flattened to 64 features)."""
    h = x.reshape(len(x), -1) @ weights["fc1.weight"].T + weights["fc1.bias"]
    return np.maximum(h, 0) @ weights["fc2.weight"].T + weights["fc2.bias"], h


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def loss_and_grads(weights: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> tuple[float, Weights]:
    """Mean cross-entropy on ``(x, y)`` and its gradient for each weight, by backpropagation."""
    x = x.reshape(len(x), -1)
    logits, h = forward(weights, x)
    logp = log_softmax(logits)
    rows = np.arange(len(y))
    d = np.exp(logp)  # dloss/dlogits = (softmax - onehot) / n
    d[rows, y] -= 1
    d /= len(y)
    a = np.maximum(h, 0)
    da = d @ weights["fc2.weight"]
    da[h <= 0] = 0  # ReLU passes the gradient where its input was positive
    grads = {"fc1.weight": da.T @ x, "fc1.bias": da.sum(axis=0), "fc2.weight": d.T @ a, "fc2.bias": d.sum(axis=0)}
    return float(-logp[rows, y].mean()), grads


def evaluate(weights: Mapping[str, np.ndarray], x: np.ndarray, y: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Accuracy and mean cross-entropy of the MLP ``weights`` on ``(x, y)``."""
    y = np.asarray(y, np.int64)
    logp = log_softmax(forward(weights, np.asarray(x, np.float32))[0])
    return {
        f"{prefix}accuracy": float((logp.argmax(axis=1) == y).mean()),
        f"{prefix}loss": float(-logp[np.arange(len(y)), y].mean()),
    }


def evaluator(x: np.ndarray, y: np.ndarray) -> Callable[[Mapping[str, np.ndarray]], dict[str, float]]:
    """A controller ``evaluate`` callback: the global model's accuracy and loss on ``(x, y)``, without torch."""
    return lambda weights: evaluate(weights, x, y)


def sgd_step(weights: Weights, grads: Mapping[str, np.ndarray], velocity: Weights, lr: float, momentum: float) -> None:
    """One step of ``torch.optim.SGD`` (no dampening, no Nesterov), in place:
    ``v = momentum * v + g``, ``w -= lr * v``, ``v`` starting at zero."""
    for name, w in weights.items():
        v = velocity[name]
        v *= momentum
        v += grads[name]
        w -= lr * v


class NumpyTrainer(LocalTrainer):
    """:class:`~nbfl.participant.local_trainer.LocalTrainer` on the digits MLP in numpy, on the CPU;
    ``options`` are LocalTrainer's (``epochs``, ``lr``, ``batch_size``, ``momentum``, ``mu``, ``min_count``)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, *, hidden: int = HIDDEN, seed: int = 0, **options: Any):
        super().__init__(x, y, seed=seed, **options)
        self.weights = init_weights(seed, hidden)

    def get_weights(self) -> Weights:
        return self.weights

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        self.weights = {k: np.array(v, np.float32) for k, v in weights.items()}  # copies: updated in place

    def train(
        self, abort_signal: Signal, round_number: int = 0, mu: float = 0.0, scaffold: bool = False
    ) -> tuple[int, float]:
        w = self.weights
        anchor = {k: v.copy() for k, v in w.items()} if mu else {}
        correction = {k: v.astype(np.float32) for k, v in self.scaffold.correction.items()} if scaffold else {}
        velocity = {k: np.zeros_like(v) for k, v in w.items()}
        rng = np.random.default_rng(self.seed * 1_000_003 + int(round_number))
        losses: list[float]
        steps, losses = 0, []
        for _ in range(self.epochs):
            losses = []
            order = rng.permutation(len(self.y))
            for start in range(0, len(order), self.batch_size):
                if abort_signal.triggered:
                    return steps, float("nan")
                idx = order[start : start + self.batch_size]
                loss, grads = loss_and_grads(w, self.x[idx], self.y[idx])
                for name, a in anchor.items():  # FedProx: the gradient of mu/2 * ||w - w0||^2
                    grads[name] += np.float32(mu) * (w[name] - a)
                for name, c in correction.items():  # SCAFFOLD: g - c_i + c
                    grads[name] += c
                sgd_step(w, grads, velocity, self.lr, self.momentum)
                steps += 1
                losses.append(loss)
        return steps, float(np.mean(losses)) if losses else 0.0

    def evaluate(self, x: np.ndarray, y: np.ndarray, prefix: str = "") -> dict[str, float]:
        return evaluate(self.weights, x, y, prefix)


def digits_trainer(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int, device: str | None) -> NumpyTrainer:
    """The built-in numpy trainer of :mod:`nbfl.participant.builtin` on ``(x, y)``; it trains on the CPU only."""
    if device not in (None, "cpu"):
        raise ValueError(f"device {device!r}: the numpy trainer trains on the CPU; a GPU needs torch (--trainer torch)")
    return NumpyTrainer(x, y, epochs=epochs, seed=seed)


def digits_model(
    seed: int, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[Weights, Callable[[Weights], dict[str, float]]]:
    """The controller's default without torch: the MLP's initial weights and an evaluator on ``(x_test, y_test)``."""
    return init_weights(seed), evaluator(x_test, y_test)
