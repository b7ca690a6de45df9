"""Blockwise quantization, shared by the ``int8`` and ``int16`` codecs.

A tensor is cut into blocks of :data:`BLOCK` values; each block is stored as one
integer per value, ``q = round((x - low) / step)`` with ``step = (max - min) / levels``
(``levels``: the integer type's count of values less one; a signed type is offset by its
minimum, as the wire carries int16 but not uint16), plus its ``low`` and ``step`` (two
float32s: the codec's side rows). A value comes back within ``step / 2`` of where it was,
and a block whose values are all equal comes back exactly.
"""

from __future__ import annotations

import numpy as np

from ..codec import Codec, CompressionError

BLOCK = 256


def quantize(array: np.ndarray, codes: type[np.integer] = np.uint8) -> tuple[np.ndarray, np.ndarray]:
    """A float array as ``codes`` of its shape, and float32 ``(low, step)`` per block of :data:`BLOCK`."""
    info = np.iinfo(codes)
    levels = int(info.max) - int(info.min)
    flat = array.astype(np.float32, copy=False).reshape(-1)
    blocks = -(-flat.size // BLOCK)
    padded = np.empty(blocks * BLOCK, np.float32)
    padded[: flat.size] = flat
    padded[flat.size :] = flat[-1] if flat.size else 0.0  # the last block's values: its own range stays
    view = padded.reshape(blocks, BLOCK)
    low, high = view.min(axis=1), view.max(axis=1)
    step = (high - low) / levels
    safe = np.where(step > 0, step, 1.0)  # a constant block: every code 0, and low alone restores it
    q = (np.rint((view - low[:, None]) / safe[:, None]).clip(0, levels) + info.min).astype(codes)
    return q.reshape(-1)[: flat.size].reshape(array.shape), np.stack([low, step], axis=1)


def dequantize(
    q: np.ndarray, scales: np.ndarray, dtype: str = "float32", codes: type = np.uint8, label: str = "int8"
) -> np.ndarray:
    """The inverse of :func:`quantize`; CompressionError if the codes and scales do not fit together."""
    blocks = -(-q.size // BLOCK)
    if q.dtype != codes or scales.dtype != np.float32 or scales.shape != (blocks, 2):
        raise CompressionError(
            f"{label} codes {q.dtype} {q.shape} need float32 scales of shape ({blocks}, 2), got "
            f"{scales.dtype} {scales.shape}"
        )
    if not np.isfinite(scales).all() or (scales[:, 1] < 0).any():
        raise CompressionError(f"{label} block scales hold NaN, infinite or negative steps")
    padded = np.zeros(blocks * BLOCK, np.float32)
    padded[: q.size] = q.reshape(-1)
    padded[: q.size] -= np.iinfo(codes).min
    values = scales[:, :1] + padded.reshape(blocks, BLOCK) * scales[:, 1:]
    return values.reshape(-1)[: q.size].reshape(q.shape).astype(dtype, copy=False)


class Blockwise(Codec):
    """A codec of ``codes`` per value and one ``(low, step)`` side row per block."""

    codes: type[np.integer] = np.uint8
    side_width = 2

    def encode(self, name: str, array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return quantize(array, self.codes)

    def side_rows(self, coded: np.ndarray) -> int:
        return -(-coded.size // BLOCK)

    def decode(self, name: str, coded: np.ndarray, side: np.ndarray, dtype: str) -> np.ndarray:
        return dequantize(coded, side, dtype, self.codes, self.name)
