"""``int16``: blockwise 16-bit quantization (:mod:`.blockwise`): float16's bytes without its
limits. Two bytes a value plus two float32s per block of 256 (about 0.52 of float32's
bytes); a value comes back within ``(max - min) / 131070`` of its block's range, about
260 times closer than int8, and any finite value is carried, where float16 refuses
values beyond 65504 (a badly scaled layer, a loss-weighted sum)."""

import numpy as np

from ..codec import register
from .blockwise import Blockwise


@register
class Int16(Blockwise):
    name = "int16"
    codes = np.int16  # offset by -32768: the wire carries int16, not uint16
