"""``float16``: each float tensor as IEEE half precision: half the bytes of float32, about
three significant digits, values up to 65504 (beyond that: an error, not infinity)."""

from __future__ import annotations

import numpy as np

from ..codec import Codec, CompressionError, register


@register
class Float16(Codec):
    name = "float16"

    def encode(self, name: str, array: np.ndarray) -> tuple[np.ndarray, None]:
        with np.errstate(over="ignore"):  # said below, in words
            half = array.astype(np.float16)
        if not np.isfinite(half).all():
            raise CompressionError(f"tensor {name!r} has values beyond float16's range (65504): use int8 or none")
        return half, None

    def decode(self, name: str, coded: np.ndarray, side: np.ndarray, dtype: str) -> np.ndarray:
        if coded.dtype != np.float16:
            raise CompressionError(f"tensor {name!r} should be float16, is {coded.dtype}")
        return coded.astype(dtype)
