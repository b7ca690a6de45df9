"""The one place torch meets nbfl: ``state_dict`` <-> ``dict[str, np.ndarray]``.

The rest of nbfl is numpy and pyzmq only; import this module only where torch is used.
"""

from __future__ import annotations

import warnings
from typing import Mapping

import numpy as np
import torch

from .weights import Weights


def to_numpy(state_dict: Mapping[str, torch.Tensor]) -> Weights:
    """numpy views of a state dict; CUDA tensors are copied to the CPU, CPU ones are not copied."""
    out: Weights = {}
    for name, tensor in state_dict.items():
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        if t.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
            t = t.float()
        out[name] = t.numpy()
    return out


def to_torch(weights: Mapping[str, np.ndarray], device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Tensors for ``load_state_dict``; on the CPU they share memory with the arrays.

    Some arrays are read-only (decoded from ``bytes``, or frozen by their owner); torch
    only reads them in ``load_state_dict`` (which copies into the model), so its
    warning about that is silenced.
    """
    out = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        for name, arr in weights.items():
            out[name] = torch.from_numpy(arr).to(device)
    return out


def get_weights(model: torch.nn.Module) -> Weights:
    return to_numpy(model.state_dict())


def set_weights(model: torch.nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    device = next(model.parameters(), torch.empty(0)).device
    model.load_state_dict(to_torch(weights, device))


def device_name(asked: str | None = None) -> str:
    """Where a built-in trainer trains, as it reports it: ``asked`` (``cuda`` meaning
    ``cuda:0``), by default ``cuda:0`` when a GPU is present, else ``cpu``. A GPU asked for
    where torch sees none (or not that many) is a ValueError that says so, not a crash in
    the first round."""
    if asked is None:
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    device = torch.device(asked)
    if device.type == "cuda":
        index = device.index or 0
        if index >= torch.cuda.device_count():
            seen = torch.cuda.device_count() if torch.cuda.is_available() else 0
            raise ValueError(f"device {asked!r} asked for, but torch {torch.__version__} sees {seen} CUDA GPU(s) here")
        return f"cuda:{index}"
    return str(device)
