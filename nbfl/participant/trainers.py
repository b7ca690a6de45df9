"""Built-in torch trainers: an Executor that trains any classifier on in-memory arrays.

Used by the demo, ``nbfl client`` and spawned clients where torch is installed
(:mod:`nbfl.participant.builtin` chooses). It trains on CUDA when present and says which device it
used, so the controller's client table can show it. The task handling it shares with
the numpy trainer lives in :mod:`nbfl.participant.local_trainer`; this module holds what torch does.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from ..algorithms.fedprox import MU as FEDPROX_MU
from ..algorithms.fedprox.client import proximal_term
from ..algorithms.scaffold import RUN as SCAFFOLD_RUN
from ..algorithms.scaffold.client_torch import gradient_correction
from ..protocol.torch_adapter import device_name, get_weights, set_weights
from ..protocol.weights import Weights
from .dp_sgd import DPSGD
from .executor import DXO, Shareable, Signal
from .local_trainer import LocalTrainer
from .models import DigitsMLP


class ArrayTrainer(LocalTrainer):
    """:class:`~nbfl.participant.local_trainer.LocalTrainer` on a torch ``model``, on ``device``
    (``cuda:0`` when there is a GPU, by default); ``options`` are LocalTrainer's
    (``epochs``, ``lr``, ``batch_size``, ``momentum``, ``mu``, ``min_count``, ``seed``).

    With ``dp_sgd`` it trains by DP-SGD (:mod:`nbfl.participant.dp_sgd`); that leaves out FedProx's
    term and SCAFFOLD's correction, so such tasks are refused.
    """

    def __init__(
        self,
        model: nn.Module,
        x: np.ndarray,
        y: np.ndarray,
        *,
        dp_sgd: DPSGD | None = None,
        device: str | None = None,
        **options: Any,
    ):
        super().__init__(x, y, **options)
        self.device = device_name(device)
        self.model = model.to(self.device)
        self.tx, self.ty = torch.from_numpy(self.x), torch.from_numpy(self.y)  # the same memory, as torch sees it
        self.dp_sgd = dp_sgd  # record-level DP on this site (Opacus); its epsilon goes into the metrics

    def train_task(self, dxo: DXO, round_number: int, abort_signal: Signal) -> Shareable:
        if self.dp_sgd is not None and (SCAFFOLD_RUN in dxo.meta or dxo.meta.get(FEDPROX_MU)):
            raise ValueError("this site trains with DP-SGD, which does not combine with FedProx or SCAFFOLD here")
        return super().train_task(dxo, round_number, abort_signal)

    def train_metrics(self, loss: float) -> dict[str, float]:
        metrics = super().train_metrics(loss)
        return {**metrics, **self.dp_sgd.spent()} if self.dp_sgd is not None else metrics

    def get_weights(self) -> Weights:
        return get_weights(self.model)

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        set_weights(self.model, weights)

    def train(
        self, abort_signal: Signal, round_number: int = 0, mu: float = 0.0, scaffold: bool = False
    ) -> tuple[int, float]:
        opt = torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=self.momentum)
        loss_fn = nn.CrossEntropyLoss()
        prox = proximal_term(self.model, float(mu))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(round_number))
        self.model.train()
        if self.dp_sgd is not None:
            torch.manual_seed(self.seed * 1_000_003 + int(round_number))  # Opacus samples batches from torch's RNG

            def step(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> float:
                loss = loss_fn(model(xb.to(self.device)), yb.to(self.device))
                loss.backward()
                return loss.item()

            data = torch.utils.data.TensorDataset(self.tx, self.ty)
            steps, losses = self.dp_sgd.epochs(
                self.model, opt, data, self.batch_size, self.epochs, step, lambda: abort_signal.triggered
            )
            return steps, float(np.mean(losses)) if losses else 0.0
        correct = gradient_correction(self.model, self.scaffold.correction) if scaffold else None
        steps, losses = 0, []
        for _ in range(self.epochs):
            losses = []
            order = torch.randperm(len(self.ty), generator=generator)
            for start in range(0, len(order), self.batch_size):
                if abort_signal.triggered:
                    return steps, float("nan")
                idx = order[start : start + self.batch_size]
                xb, yb = self.tx[idx].to(self.device), self.ty[idx].to(self.device)
                opt.zero_grad()
                loss = loss_fn(self.model(xb), yb)
                (loss + prox(self.model)).backward()
                if correct is not None:
                    correct(self.model)
                opt.step()
                steps += 1
                losses.append(loss.item())
        return steps, float(np.mean(losses)) if losses else 0.0

    def evaluate(self, x: Any, y: Any, prefix: str = "") -> dict[str, float]:
        return evaluate_model(self.model, x, y, self.device, prefix)


@torch.no_grad()
def evaluate_model(model: nn.Module, x: Any, y: Any, device: str = "cpu", prefix: str = "") -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``(x, y)``."""
    model.eval()
    x = torch.as_tensor(np.asarray(x, np.float32)).to(device)
    y = torch.as_tensor(np.asarray(y, np.int64)).to(device)
    logits = model(x)
    return {
        f"{prefix}accuracy": float((logits.argmax(1) == y).float().mean()),
        f"{prefix}loss": float(nn.functional.cross_entropy(logits, y)),
    }


def evaluator(model: nn.Module, x: np.ndarray, y: np.ndarray) -> Callable[[Mapping[str, np.ndarray]], dict[str, float]]:
    """A controller ``evaluate`` callback: load the global weights into ``model`` and test it."""

    def evaluate(weights: Mapping[str, np.ndarray]) -> dict[str, float]:
        set_weights(model, weights)
        return evaluate_model(model, x, y, next(model.parameters()).device.type)

    return evaluate


def _seeded_mlp(seed: int) -> DigitsMLP:
    """A DigitsMLP initialised from ``seed``, leaving torch's global RNG as it was (a notebook's own)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DigitsMLP()


def digits_trainer(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int, device: str | None) -> ArrayTrainer:
    """The built-in torch trainer of :mod:`nbfl.participant.builtin` on ``(x, y)``."""
    return ArrayTrainer(_seeded_mlp(seed), x, y, epochs=epochs, seed=seed, device=device)


def digits_model(
    seed: int, x_test: np.ndarray, y_test: np.ndarray
) -> tuple[nn.Module, Callable[[Weights], dict[str, float]]]:
    """The controller's default under torch: a seeded DigitsMLP and its evaluator on ``(x_test, y_test)``."""
    model = _seeded_mlp(seed)
    return model, evaluator(model, x_test, y_test)
