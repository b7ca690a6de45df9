"""Generated CIFAR-10 files in the real binary layout, with a learnable signal.

Each class tints the image toward its own colour, the same in every file of a data set,
so a model that learns does better than chance on the test file; the bytes are laid out
as in ``cifar-10-binary.tar.gz``.
"""

from pathlib import Path

import numpy as np

from nbfl.data.vision import BIN_DIR, TEST_FILES, TRAIN_FILES


def make_images(n: int, rng: np.random.Generator, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 10, n)
    noise = rng.integers(0, 256, (n, 32, 32, 3))
    images = (0.5 * noise + 0.5 * palette[labels][:, None, None, :]).astype(np.uint8)
    return images, labels


def write_cifar10_binary(root: Path, per_file: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write all six batch files; returns the training images and labels in order."""
    folder = Path(root) / BIN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (10, 3))  # each class's colour
    all_images, all_labels = [], []
    for name in TRAIN_FILES + TEST_FILES:
        images, labels = make_images(per_file, rng, palette)
        records = np.concatenate(
            [labels[:, None].astype(np.uint8), images.transpose(0, 3, 1, 2).reshape(per_file, -1)], 1
        )
        records.tofile(folder / name)
        if name in TRAIN_FILES:
            all_images.append(images)
            all_labels.append(labels)
    return np.concatenate(all_images), np.concatenate(all_labels)
