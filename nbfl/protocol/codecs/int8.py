"""``int8``: blockwise 8-bit quantization (:mod:`.blockwise`): one byte a value plus two
float32s per block of 256, about 0.26 of float32's bytes; a value comes back within
``(max - min) / 510`` of its block's range."""

import numpy as np

from ..codec import register
from .blockwise import Blockwise


@register
class Int8(Blockwise):
    name = "int8"
    codes = np.uint8
