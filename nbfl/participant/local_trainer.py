"""The task handling the built-in trainers share, whatever does their arithmetic.

:class:`LocalTrainer` answers the tasks of every workflow the built-in trainers serve
(train, validate, submit_model, statistics) and reads a train task's meta (FedProx's
``mu``, SCAFFOLD's variates); a subclass holds the model and does the maths: torch in
:class:`nbfl.participant.trainers.ArrayTrainer`, numpy in :class:`nbfl.participant.numpy_trainer.NumpyTrainer`.
Both answer alike, so torch and numpy participants average into one model. Nothing
here imports torch.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..algorithms.fedprox import MU as FEDPROX_MU
from ..algorithms.scaffold import RUN as SCAFFOLD_RUN
from ..algorithms.scaffold.client import ScaffoldState
from ..protocol import names
from ..protocol.names import DataKind, MetaKey
from ..protocol.weights import Weights
from .executor import DXO, AppConstants, Executor, FLContext, ReturnCode, Shareable, Signal, from_shareable, make_reply
from .statistics import local_statistics


class LocalTrainer(Executor):
    """Local SGD epochs on ``(x, y)``, with momentum.

    Answers ``train`` with WEIGHTS (or, for SCAFFOLD, WEIGHT_DIFF plus its control
    variate change), adding FedProx's proximal term when the task meta carries
    ``fedprox_mu`` (or ``mu`` is set here); ``validate`` with METRICS on the local data;
    ``submit_model`` with the model it trained last (for cross-site evaluation);
    ``statistics`` with per-feature aggregates of ``x``, withheld below ``min_count`` samples.
    Batches are shuffled from ``(seed, round)``, so runs of different algorithms see
    the same batches in the same round.

    Subclasses provide :meth:`get_weights`, :meth:`set_weights`, :meth:`train` and
    :meth:`evaluate`, and set :attr:`device`.
    """

    device = "cpu"

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        epochs: int = 1,
        lr: float = 0.05,
        batch_size: int = 32,
        momentum: float = 0.9,
        mu: float = 0.0,
        min_count: int = 10,
        seed: int = 0,
    ):
        super().__init__()
        self.x = np.asarray(x, np.float32)
        self.y = np.asarray(y, np.int64)
        self.epochs, self.lr, self.batch_size, self.momentum, self.mu = epochs, lr, batch_size, momentum, mu
        self.seed = seed
        self.min_count = min_count  # this site's own floor for sharing statistics
        self.scaffold = ScaffoldState()
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
            tensors, meta = local_statistics(self.x.reshape(len(self.x), -1), dxo.data, dxo.meta, self.min_count)
            return DXO(DataKind.STATISTICS, tensors, meta).to_shareable()
        if task_name == AppConstants.TASK_SUBMIT_MODEL:
            if self.local_weights is None:
                self.train_task(dxo, 0, abort_signal)
            return DXO(DataKind.WEIGHTS, self.local_weights or {}, {"num_samples": self.samples}).to_shareable()
        self.set_weights(dxo.data)
        if task_name == AppConstants.TASK_VALIDATION:
            return DXO(DataKind.METRICS, {}, {"metrics": self.evaluate(self.x, self.y)}).to_shareable()
        return make_reply(ReturnCode.TASK_UNKNOWN)

    def train_task(self, dxo: DXO, round_number: int, abort_signal: Signal) -> Shareable:
        scaffold_run = SCAFFOLD_RUN in dxo.meta
        self.set_weights(self.scaffold.begin(dxo.data, dxo.meta) if scaffold_run else dxo.data)
        mu = dxo.meta.get(FEDPROX_MU, self.mu)
        steps, loss = self.train(
            abort_signal, round_number, mu if isinstance(mu, (int, float)) else self.mu, scaffold_run
        )
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        meta = {
            MetaKey.NUM_STEPS_CURRENT_ROUND: steps,
            "num_samples": self.samples,
            "metrics": self.train_metrics(loss),
        }
        # one copy serves twice: cross-site's submit_model, and the result itself, whose
        # frames may wait for the controller's pull while the next task rewrites the model
        self.local_weights = {k: v.copy() for k, v in self.get_weights().items()}
        if scaffold_run:
            # momentum SGD moves about lr / (1 - momentum) per unit gradient once it is going
            data = self.scaffold.finish(self.local_weights, max(steps, 1), self.lr / (1 - self.momentum))
            return DXO(DataKind.WEIGHT_DIFF, data, meta).to_shareable()
        return DXO(DataKind.WEIGHTS, self.local_weights, meta).to_shareable()

    def train_metrics(self, loss: float) -> dict[str, float]:
        """What a train result reports: the last epoch's loss, and how the model does on the local data."""
        return {"train_loss": loss, **self.evaluate(self.x, self.y, prefix="local_")}

    def get_weights(self) -> Weights:
        """The model as numpy arrays (views are fine: they are copied before they leave)."""
        raise NotImplementedError

    def set_weights(self, weights: Mapping[str, np.ndarray]) -> None:
        """Load ``weights`` (the global model a task brings) into the model."""
        raise NotImplementedError

    def train(
        self, abort_signal: Signal, round_number: int = 0, mu: float = 0.0, scaffold: bool = False
    ) -> tuple[int, float]:
        """Run the local epochs; returns (steps taken, mean loss of the last epoch). With
        ``scaffold``, each gradient gets ``self.scaffold.correction`` added before its step."""
        raise NotImplementedError

    def evaluate(self, x: np.ndarray, y: np.ndarray, prefix: str = "") -> dict[str, float]:
        """``{prefix}accuracy`` and ``{prefix}loss`` (mean cross-entropy) of the model on ``(x, y)``."""
        raise NotImplementedError
