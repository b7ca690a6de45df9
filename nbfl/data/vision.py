"""CIFAR-10 and the few torchvision transforms the seed's trainer uses.

A trainer written against torchvision (``CIFAR10(root, train, transform, download)``,
``Compose``, ``ToTensor``, ``Normalize``) runs unchanged on these, so it can be tested
on machines without torchvision. Where ``root`` holds CIFAR-10's binary version
(``cifar-10-batches-bin/*.bin``: per image one label byte and 3,072 pixel bytes,
channel-major), it is read here with numpy; otherwise torchvision's own loader is
used (the python version, and downloads), which needs torchvision installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = ["CIFAR10", "Compose", "Normalize", "ToTensor", "read_cifar10_binary"]

BIN_DIR = "cifar-10-batches-bin"
TRAIN_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)]
TEST_FILES = ["test_batch.bin"]
RECORD = 1 + 3 * 32 * 32


def read_cifar10_binary(folder: str | os.PathLike, files: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 32, 32, 3)`` uint8 and labels ``(N,)`` int64 from binary CIFAR-10 files."""
    images, labels = [], []
    for name in files:
        raw = np.fromfile(Path(folder) / name, dtype=np.uint8)
        if raw.size % RECORD:
            raise ValueError(f"{name}: {raw.size} bytes is not a whole number of {RECORD}-byte records")
        records = raw.reshape(-1, RECORD)
        if records[:, 0].max(initial=0) > 9:
            raise ValueError(f"{name}: labels outside 0..9; is this CIFAR-10's binary version?")
        labels.append(records[:, 0].astype(np.int64))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.concatenate(images), np.concatenate(labels)


class CIFAR10(torch.utils.data.Dataset):
    """torchvision's ``CIFAR10`` signature; items are ``(transform(image), label)``."""

    def __init__(
        self,
        root: str,
        train: bool = True,
        transform: Callable | None = None,
        target_transform: Callable | None = None,
        download: bool = False,
    ):
        folder = Path(os.path.expanduser(root)) / BIN_DIR
        self.transform, self.target_transform = transform, target_transform
        if folder.is_dir():
            self.data, targets = read_cifar10_binary(folder, TRAIN_FILES if train else TEST_FILES)
            self.targets = targets.tolist()
            return
        try:
            from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10
        except ImportError:
            raise FileNotFoundError(
                f"no {folder} and no torchvision: put CIFAR-10's binary version there or pip install torchvision"
            ) from None
        real = TorchvisionCIFAR10(os.path.expanduser(root), train=train, download=download)
        self.data, self.targets = real.data, list(real.targets)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        image, target = self.data[i], self.targets[i]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target


class Compose:
    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, x: Any) -> Any:
        for t in self.transforms:
            x = t(x)
        return x


class ToTensor:
    """HWC uint8 image -> CHW float tensor in [0, 1], like torchvision's."""

    def __call__(self, image: Any) -> torch.Tensor:
        arr = np.asarray(image)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1))).float().div(255.0)


class Normalize:
    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return (tensor - self.mean) / self.std
