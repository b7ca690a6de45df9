"""Built-in torch trainers: an Executor that trains any classifier on in-memory arrays.

Used by the demo, ``nbfl client`` and spawned clients. It trains on CUDA when present
and says which device it used, so the controller's client table can show it.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

from . import names
from .dp_sgd import DPSGD
from .executor import DXO, AppConstants, DataKind, Executor, FLContext, MetaKey, ReturnCode, Shareable, Signal
from .executor import from_shareable, make_reply
from .torch_adapter import device_name, get_weights, set_weights
from .statistics import local_statistics
from .torch_algorithms import ScaffoldClient, proximal_term
from .weights import Weights
from .workshop import LocalSetup, Share


class ArrayTrainer(Executor):
    """Local SGD epochs on ``(x, y)``.

    Answers ``train`` with WEIGHTS (or, for SCAFFOLD, WEIGHT_DIFF plus its control
    variate change), adding FedProx's proximal term when the task meta carries
    ``fedprox_mu`` (or ``mu`` is set here); ``validate`` with METRICS on the local data;
    ``submit_model`` with the model it trained last (for cross-site evaluation);
    ``statistics`` with per-feature aggregates of ``x``, withheld below ``min_count`` samples.
    With ``dp_sgd`` it trains by DP-SGD (:mod:`nbfl.dp_sgd`); that leaves out FedProx's
    term and SCAFFOLD's correction, so such tasks are refused.
    Batches are shuffled from ``(seed, round)``, so runs of different algorithms see
    the same batches in the same round.
    """

    def __init__(
        self,
        model: nn.Module,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int = 1,
        lr: float = 0.05,
        batch_size: int = 32,
        momentum: float = 0.9,
        mu: float = 0.0,
        min_count: int = 10,
        dp_sgd: DPSGD | None = None,
        seed: int = 0,
        device: str | None = None,
    ):
        super().__init__()
        self.device = device_name(device)
        self.model = model.to(self.device)
        self.x = torch.as_tensor(np.asarray(x, np.float32))
        self.y = torch.as_tensor(np.asarray(y, np.int64))
        self.epochs, self.lr, self.batch_size, self.momentum, self.mu = epochs, lr, batch_size, momentum, mu
        self.seed = seed
        self.min_count = min_count  # this site's own floor for sharing statistics
        self.dp_sgd = dp_sgd  # record-level DP on this site (Opacus); its epsilon goes into the metrics
        self.scaffold = ScaffoldClient()
        self.local_weights: Weights | None = None  # after the last train task

    @property
    def samples(self) -> int:
        return len(self.y)

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        dxo = from_shareable(shareable)
        if dxo.data_kind != DataKind.WEIGHTS:
            return make_reply(ReturnCode.BAD_TASK_DATA)
        if task_name == AppConstants.TASK_TRAIN:
            return self.train_task(dxo, fl_ctx.get_prop(AppConstants.CURRENT_ROUND, 0), abort_signal)
        if task_name == names.STATISTICS:
            flat = self.x.reshape(len(self.x), -1).numpy()
            tensors, meta = local_statistics(flat, dxo.data, dxo.meta, self.min_count)
            return DXO(DataKind.STATISTICS, tensors, meta).to_shareable()
        if task_name == AppConstants.TASK_SUBMIT_MODEL:
            if self.local_weights is None:
                self.train_task(dxo, 0, abort_signal)
            return DXO(DataKind.WEIGHTS, self.local_weights or {}, {"num_samples": self.samples}).to_shareable()
        set_weights(self.model, dxo.data)
        if task_name == AppConstants.TASK_VALIDATION:
            return DXO(DataKind.METRICS, {}, {"metrics": self.evaluate(self.x, self.y)}).to_shareable()
        return make_reply(ReturnCode.TASK_UNKNOWN)

    def train_task(self, dxo: DXO, round_number: int, abort_signal: Signal) -> Shareable:
        scaffold = names.SCAFFOLD_RUN in dxo.meta
        if self.dp_sgd is not None and (scaffold or dxo.meta.get(names.FEDPROX_MU)):
            raise ValueError("this site trains with DP-SGD, which does not combine with FedProx or SCAFFOLD here")
        set_weights(self.model, self.scaffold.begin(self.model, dxo.data, dxo.meta) if scaffold else dxo.data)
        mu = dxo.meta.get(names.FEDPROX_MU, self.mu)
        steps, loss = self.train(abort_signal, round_number, mu if isinstance(mu, (int, float)) else self.mu, scaffold)
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        metrics = {"train_loss": loss, **self.evaluate(self.x, self.y, prefix="local_")}
        if self.dp_sgd is not None:
            metrics.update(self.dp_sgd.spent())
        meta = {MetaKey.NUM_STEPS_CURRENT_ROUND: steps, "num_samples": self.samples, "metrics": metrics}
        # one copy serves twice: cross-site's submit_model, and the result itself, whose
        # frames may wait for the controller's pull while the next task rewrites the model
        self.local_weights = {k: v.copy() for k, v in get_weights(self.model).items()}
        if scaffold:
            # momentum SGD moves about lr / (1 - momentum) per unit gradient once it is going
            data = self.scaffold.finish(self.model, max(steps, 1), self.lr / (1 - self.momentum))
            return DXO(DataKind.WEIGHT_DIFF, data, meta).to_shareable()
        return DXO(DataKind.WEIGHTS, self.local_weights, meta).to_shareable()

    def train(self, abort_signal: Signal, round_number: int = 0, mu: float = 0.0, scaffold: bool = False) -> tuple[int, float]:
        """Run the local epochs; returns (steps taken, mean loss of the last epoch)."""
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

            data = torch.utils.data.TensorDataset(self.x, self.y)
            steps, losses = self.dp_sgd.epochs(
                self.model, opt, data, self.batch_size, self.epochs, step, lambda: abort_signal.triggered
            )
            return steps, float(np.mean(losses)) if losses else 0.0
        steps, losses = 0, []
        for _ in range(self.epochs):
            losses = []
            order = torch.randperm(len(self.y), generator=generator)
            for start in range(0, len(order), self.batch_size):
                if abort_signal.triggered:
                    return steps, float("nan")
                idx = order[start : start + self.batch_size]
                xb, yb = self.x[idx].to(self.device), self.y[idx].to(self.device)
                opt.zero_grad()
                loss = loss_fn(self.model(xb), yb)
                (loss + prox(self.model)).backward()
                if scaffold:
                    self.scaffold.correct(self.model)
                opt.step()
                steps += 1
                losses.append(loss.item())
        return steps, float(np.mean(losses)) if losses else 0.0

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, prefix: str = "") -> dict[str, float]:
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

    def evaluate(weights: Weights) -> dict[str, float]:
        set_weights(model, weights)
        return evaluate_model(model, x, y, next(model.parameters()).device.type)

    return evaluate


def digits_setup(share: Share, epochs: int = 2, device: str | None = None) -> LocalSetup:
    """The built-in trainer on ``share`` of scikit-learn's digits: what ``nbfl client``,
    ``%fl_spawn`` and ``%fl_join`` train with, the share given on the command line or
    assigned by a workshop's controller. ``device``: ``cuda:0`` when there is a GPU, by default."""
    from .data import load_digits_split, partition
    from .models import DigitsMLP

    x, y, _, _ = load_digits_split(seed=share.seed)
    part = partition(share.partition, y, share.of, share.seed)[share.index]
    trainer = ArrayTrainer(DigitsMLP(), x[part], y[part], epochs=epochs, seed=share.seed + share.index, device=device)
    labels = np.bincount(y[part], minlength=10).tolist()
    return LocalSetup(trainer, (x[part], y[part]), trainer.samples, trainer.device, labels)


def built_in_client(share: Share | None, epochs: int = 2, device: str | None = None) -> dict[str, Any]:
    """``nbfl.Client`` keyword arguments for the built-in trainer (``nbfl client``,
    ``%fl_spawn``, Dask): the trainer of ``share``, or with ``share=None`` the means to
    build it from the share a workshop's controller assigns."""

    def setup(given: Share) -> LocalSetup:
        torch.manual_seed(given.seed + given.index)
        return digits_setup(given, epochs, device)

    if share is None:
        return {"from_share": setup}
    made = setup(share)
    return {"executor": made.executor, "data": made.data, "samples": made.samples, "device": made.device,
            "labels": made.labels, "share": share}  # fmt: skip
