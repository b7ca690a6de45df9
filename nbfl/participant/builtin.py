"""The built-in digits trainer on torch or on numpy, chosen in this one place.

A participant's small install has numpy and pyzmq but no torch (and no scikit-learn:
the digits ship with nbfl). The built-in trainer and the controller's default model
therefore come in two backends with the same weights (names, shapes, float32), so
torch and numpy participants average into one model: :mod:`nbfl.participant.trainers` (torch)
and :mod:`nbfl.participant.numpy_trainer`. ``auto`` takes torch where it imports and numpy
otherwise; ``$NBFL_TRAINER`` or ``nbfl client --trainer`` says which. Importing this
module imports neither torch nor scikit-learn; torch comes in only once chosen.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Callable, Sequence

import numpy as np

from ..data import load_split, partition
from ..protocol.joining import Share
from ..protocol.weights import Weights
from .setup import LocalSetup

TRAINER_ENV = "NBFL_TRAINER"
CHOICES = ("auto", "torch", "numpy")


def choose(asked: str | None = None) -> str:
    """``"torch"`` or ``"numpy"``: ``asked``, else ``$NBFL_TRAINER``, else ``auto`` (torch
    where it imports). A ValueError says why for a name that is none of :data:`CHOICES`,
    or torch asked for where it does not import."""
    choice = (asked or os.environ.get(TRAINER_ENV) or "auto").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"trainer {choice!r}: choose one of {', '.join(CHOICES)} (--trainer or ${TRAINER_ENV})")
    if choice == "numpy":
        return choice
    try:
        import torch  # noqa: F401 - the torch trainer needs it anyway
    except ImportError as exc:
        if choice == "torch":
            raise ValueError(f"the torch trainer was asked for, but torch does not import here ({exc})") from None
        return "numpy"
    return "torch"


def _backend(trainer: str | None) -> ModuleType:
    """The module of the chosen backend; both have ``digits_trainer`` and ``digits_model``."""
    if choose(trainer) == "torch":
        from . import trainers

        return trainers
    from . import numpy_trainer

    return numpy_trainer


def digits_model(
    seed: int = 0, trainer: str | None = None, data: str = "digits"
) -> tuple[Any, Callable[[Weights], dict[str, float]]]:
    """The controller's default: the digits MLP (a torch module, or its weights under numpy)
    initialised from ``seed``, and an evaluator on the test split of ``seed`` of ``data``
    (:data:`nbfl.data.DATASETS`: the digits, or the generated problem of the same shape)."""
    _, _, x_test, y_test = load_split(data, seed=seed)
    return _backend(trainer).digits_model(seed, x_test, y_test)


def digits_setup(
    share: Share, epochs: int = 2, device: str | None = None, trainer: str | None = None, data: str = "digits"
) -> LocalSetup:
    """The built-in trainer on ``share`` of ``data`` (the digits by default): what ``nbfl client``,
    ``%fl_spawn`` and ``%fl_join`` train with, the share given on the command line or assigned
    by a workshop's controller. ``device``: ``cuda:0`` when torch sees a GPU, by default."""
    return digits_setups([share], epochs, device, trainer, data)[0]


def digits_setups(
    shares: Sequence[Share],
    epochs: int = 2,
    device: str | None = None,
    trainer: str | None = None,
    data: str = "digits",
) -> list[LocalSetup]:
    """:func:`digits_setup` for many shares at once (a host's logical clients): the dataset and
    its partition are made once for shares that agree on them, and each client keeps a copy
    of its own part only."""
    setups, made = [], {}
    for share in shares:
        key = (share.of, share.partition, share.seed)
        if key not in made:  # only the last: a host's shares all agree
            x, y, _, _ = load_split(data, share.of, share.seed)
            made = {key: (x, y, partition(share.partition, y, share.of, share.seed))}
        x, y, parts = made[key]
        part = parts[share.index]
        executor = _backend(trainer).digits_trainer(
            x[part], y[part], epochs=epochs, seed=share.seed + share.index, device=device
        )
        labels = np.bincount(y[part], minlength=10).tolist()
        setups.append(LocalSetup(executor, (executor.x, executor.y), executor.samples, executor.device, labels))
    return setups


def built_in_client(
    share: Share | None,
    epochs: int = 2,
    device: str | None = None,
    trainer: str | None = None,
    single_thread: bool = False,
    data: str = "digits",
) -> dict[str, Any]:
    """``nbfl.Client`` keyword arguments for the built-in trainer (``nbfl client``,
    ``%fl_spawn``, ``%fl_join``, Dask): the trainer of ``share``, or with ``share=None`` the
    means to build it from the share a workshop's controller assigns. ``trainer`` is
    chosen now, once. ``single_thread``: torch keeps to one thread, as many clients
    share few cores (``nbfl client``, Dask)."""
    chosen = _chosen(trainer, single_thread)

    def setup(given: Share) -> LocalSetup:
        return digits_setup(given, epochs, device, chosen, data)

    if share is None:
        return {"from_share": setup}
    return client_arguments(share, setup(share))


def built_in_clients(
    shares: Sequence[Share],
    epochs: int = 2,
    device: str | None = None,
    trainer: str | None = None,
    single_thread: bool = False,
    data: str = "digits",
) -> list[dict[str, Any]]:
    """:func:`built_in_client` for many clients of one process (a host's): the data is made
    once for all the given shares (:func:`digits_setups`)."""
    chosen = _chosen(trainer, single_thread)
    made = digits_setups(shares, epochs, device, chosen, data)
    return [client_arguments(share, setup) for share, setup in zip(shares, made)]


def _chosen(trainer: str | None, single_thread: bool) -> str:
    """The backend (:func:`choose`); with ``single_thread``, torch keeps to one thread."""
    chosen = choose(trainer)
    if single_thread and chosen == "torch":
        import torch

        torch.set_num_threads(1)
    return chosen


def client_arguments(share: Share, made: LocalSetup) -> dict[str, Any]:
    """``nbfl.Client`` keyword arguments for a client that trains with ``made`` on ``share``."""
    return {
        "executor": made.executor,
        "data": made.data,
        "samples": made.samples,
        "device": made.device,
        "labels": made.labels,
        "share": share,
    }
