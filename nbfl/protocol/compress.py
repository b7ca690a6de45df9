"""Compression on the wire: fewer bytes for the model going out and the updates coming back.

In a workshop thirty laptops share one access point, and every round each downloads and
uploads the model: there, bytes set the pace. A codec (one file each in
:mod:`nbfl.protocol.codecs`: ``float16``, ``int8``, ``int16``) is applied by nbfl just
before a message is encoded and reverted just after it is decoded, so trainers and
aggregators see float32 (or whatever float type the tensor had) as always.

A compressed message carries, in its header's ``compress`` field, the codec and the
original dtype of each tensor it changed, in order; the side rows of all of them (int8's
per-block ``low, step``) travel as one float32 frame (:data:`SCALES`, rows in that
order), described in the header like every tensor and checked like every frame: 8 bytes
a block, where JSON numbers would take about 40. Integer tensors (HE ciphertexts,
counts) pass unchanged. NaN or infinite values, or values beyond float16's range, are
refused with an error that says so: a lossy codec must not turn them into numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, cast

import numpy as np

from . import codecs as _codecs  # noqa: F401  (its modules register the codecs)
from .codec import CODECS, CompressionError

if TYPE_CHECKING:
    from .wire import Message

# the frame of every tensor's side rows (named when int8 was the only codec with any);
# no trainer names a tensor so
SCALES = "\x00int8-scales"
FLOATS = ("float32", "float64", "float16")


def check_codec(codec: Any) -> str | None:
    """``codec`` as given (None or ``"none"`` mean no compression); ValueError names the known ones."""
    if codec in (None, "none"):
        return None
    if codec not in CODECS:
        raise ValueError(f"unknown compression {codec!r}: nbfl knows {', '.join(CODECS)} (or none)")
    return codec


def pack(tensors: Mapping[str, np.ndarray], codec: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tensors as ``codec`` sends them, and the header field that lets :func:`unpack` restore them."""
    coder = CODECS[codec]
    out: dict[str, np.ndarray] = {}
    dtypes: list[list[str]] = []  # [name, original dtype] of each tensor changed, in order
    scales = []
    for name, array in tensors.items():
        array = np.asarray(array)
        if array.dtype.name not in FLOATS or array.dtype.name == codec:
            out[name] = array
            continue
        if not np.isfinite(array).all():
            raise CompressionError(f"tensor {name!r} holds NaN or infinite values: {codec} cannot carry them")
        dtypes.append([name, array.dtype.name])
        out[name], side = coder.encode(name, array)
        if side is not None:
            scales.append(side)
    if scales:
        out[SCALES] = np.concatenate(scales)
    return out, {"codec": codec, "dtypes": dtypes}


def received(msg: "Message", reference: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """A message's tensors as its sender had them before :func:`pack` (as they came if it did not pack them).

    With ``reference`` (the model a result answers), each compressed tensor that has a name
    of the model's must have its dtype and shape, and the others (statistics, say) may
    together grow to no more than the model's bytes (1 MiB for a small one), all checked
    before anything is decompressed: a result cannot make the controller build arrays
    much larger than the model.
    """
    return unpack(msg.tensors, msg.fields["compress"], reference) if "compress" in msg.fields else msg.tensors


def unpack(
    tensors: Mapping[str, np.ndarray], spec: Any, reference: Mapping[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Restore what :func:`pack` made from its tensors and header field; CompressionError if they
    disagree, or if a tensor is not ``reference``'s (when given) in name, dtype and shape."""
    if not isinstance(spec, dict) or spec.get("codec") not in CODECS or not isinstance(spec.get("dtypes"), list):
        raise CompressionError(f"not a compression this nbfl knows: {str(spec)[:80]}")
    coder = CODECS[spec["codec"]]
    out = {name: array for name, array in tensors.items() if name != SCALES}
    scales = tensors.get(SCALES, np.zeros((0, 2), np.float32))
    items = [item if isinstance(item, list) and len(item) == 2 else (None, None) for item in spec["dtypes"]]
    for name, dtype in items:
        if name not in out or dtype not in FLOATS:
            raise CompressionError(f"compressed tensor {str([name, dtype])[:60]} is missing or has no float type")
    if reference is not None:
        _check_against(items, out, reference)
    row = 0
    for name, dtype in cast("list[tuple[str, str]]", items):  # checked above: names in out, dtypes in FLOATS
        rows = coder.side_rows(out[name])
        if rows and (scales.ndim != 2 or len(scales) < row + rows):
            raise CompressionError(f"tensor {name!r} came without its block scales")
        out[name] = coder.decode(name, out[name], scales[row : row + rows], dtype)
        row += rows
    if row != len(scales):
        raise CompressionError(f"{len(scales)} block scales came for {row} blocks")
    return out


def _check_against(items: list, tensors: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> None:
    """CompressionError unless what ``items`` ([name, original dtype]) would restore fits ``reference`` (:func:`received`)."""
    others = 0
    for name, dtype in items:
        shape, model = tensors[name].shape, reference.get(name)
        if model is None:
            others += tensors[name].size * np.dtype(dtype).itemsize
        elif model.dtype.name != dtype or model.shape != shape:
            raise CompressionError(
                f"compressed tensor {name!r} says it was {dtype} {shape}; the model's is "
                f"{model.dtype.name} {model.shape}"
            )
    allowed = max(sum(a.nbytes for a in reference.values()), 1 << 20)
    if others > allowed:
        raise CompressionError(
            f"compressed tensors that are not the model's would take {others} bytes, more than the model's {allowed}"
        )
