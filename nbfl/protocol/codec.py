"""What a codec is, and the registry that finds one by name.

A codec carries float tensors in fewer bytes on the wire (:mod:`nbfl.protocol.compress`
applies it to the model going out and the updates coming back). Each one is a file in
:mod:`nbfl.protocol.codecs`, a subclass of :class:`Codec` decorated with
:func:`register`; that folder is read when nbfl starts, so a new codec is that one
file: the magics' and the CLI's ``--compress``, the controller and the clients (which
tell the controller what they decode) take it by its name.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

import numpy as np

from ..errors import NbflError


class CompressionError(NbflError, ValueError):
    """A tensor that this codec cannot carry faithfully, or a compressed message that is inconsistent."""


class Codec:
    """One way to carry a float tensor: ``encode`` it, and ``decode`` what came.

    A codec may need a few float32 numbers beside a tensor (int8: each block's low and
    step): ``encode`` returns them as rows of :attr:`side_width` columns, the sender
    sends the rows of all tensors as one frame, and ``decode`` gets back the
    :meth:`side_rows` rows that belong to its tensor. Every check of what came is
    ``decode``'s: raise :class:`CompressionError`, never crash.
    """

    name: ClassVar[str]
    side_width: ClassVar[int] = 0

    def encode(self, name: str, array: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The finite float ``array`` (tensor ``name``) as sent, and its side rows (or None)."""
        raise NotImplementedError

    def side_rows(self, coded: np.ndarray) -> int:
        """How many side rows ``coded`` came with."""
        return 0

    def decode(self, name: str, coded: np.ndarray, side: np.ndarray, dtype: str) -> np.ndarray:
        """The tensor as its sender had it, in ``dtype``, from ``coded`` and its side rows."""
        raise NotImplementedError


CODECS: dict[str, Codec] = {}  # by name, in the order they were registered
C = TypeVar("C", bound=type[Codec])


def register(cls: C) -> C:
    """Class decorator: make ``cls`` (one instance of it) the codec of its ``name``."""
    if not cls.name.isidentifier() or cls.name in CODECS:
        raise ValueError(f"a codec needs a new name, a Python identifier: {cls.name!r}")
    CODECS[cls.name] = cls()
    return cls
