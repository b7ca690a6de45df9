"""Compression on the wire: fewer bytes for the model going out and the updates coming back.

In a workshop thirty laptops share one access point, and every round each downloads and
uploads the model: there, bytes set the pace. Two codecs, both applied by nbfl just
before a message is encoded and reverted just after it is decoded, so trainers and
aggregators see float32 (or whatever float type the tensor had) as always:

* ``float16``: each float tensor as IEEE half precision (half the bytes; about three
  significant digits, values up to 65504).
* ``int8``: blockwise 8-bit quantization. Each tensor is cut into blocks of
  :data:`BLOCK` values; each block is stored as one byte per value, ``q = round((x -
  low) / step)``, plus its ``low`` and ``step`` (two float32s per block), so a value comes
  back within ``step / 2 = (max - min) / 510`` of where it was, and a block whose values
  are all equal comes back exactly. About 0.26 of float32's bytes.

A compressed message carries, in its header's ``compress`` field, the codec and the
original dtype of each tensor it changed, in order; the per-block ``low, step`` pairs of
all of them travel as one float32 frame (:data:`SCALES`, rows in that order), described
in the header like every tensor and checked like every frame: 8 bytes a block, where
JSON numbers would take about 40. Integer tensors (HE ciphertexts,
counts) pass unchanged. NaN or infinite values, or values beyond float16's range, are
refused with an error that says so: a lossy codec must not turn them into numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, cast

import numpy as np

from ..errors import NbflError

if TYPE_CHECKING:
    from .wire import Message

CODECS = ("float16", "int8")
BLOCK = 256
SCALES = "\x00int8-scales"  # the frame of every block's (low, step); no trainer names a tensor so
FLOATS = ("float32", "float64", "float16")


class CompressionError(NbflError, ValueError):
    """A tensor that this codec cannot carry faithfully, or a compressed message that is inconsistent."""


def check_codec(codec: Any) -> str | None:
    """``codec`` as given (None or ``"none"`` mean no compression); ValueError names the known ones."""
    if codec in (None, "none"):
        return None
    if codec not in CODECS:
        raise ValueError(f"unknown compression {codec!r}: nbfl knows {', '.join(CODECS)} (or none)")
    return codec


def pack(tensors: Mapping[str, np.ndarray], codec: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The tensors as ``codec`` sends them, and the header field that lets :func:`unpack` restore them."""
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
        if codec == "float16":
            out[name] = _half(name, array)
        else:
            out[name], block_scales = quantize(array)
            scales.append(block_scales)
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
    codec = spec["codec"]
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
        if codec == "float16":
            if out[name].dtype != np.float16:
                raise CompressionError(f"tensor {name!r} should be float16, is {out[name].dtype}")
            out[name] = out[name].astype(dtype)
        else:
            blocks = -(-out[name].size // BLOCK)
            if scales.ndim != 2 or len(scales) < row + blocks:
                raise CompressionError(f"tensor {name!r} came without its block scales")
            out[name] = dequantize(out[name], scales[row : row + blocks], dtype)
            row += blocks
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


def quantize(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A float array as uint8 codes of its shape, and float32 ``(low, step)`` per block of :data:`BLOCK`."""
    flat = array.astype(np.float32, copy=False).reshape(-1)
    blocks = -(-flat.size // BLOCK)
    padded = np.empty(blocks * BLOCK, np.float32)
    padded[: flat.size] = flat
    padded[flat.size :] = flat[-1] if flat.size else 0.0  # the last block's values: its own range stays
    view = padded.reshape(blocks, BLOCK)
    low, high = view.min(axis=1), view.max(axis=1)
    step = (high - low) / 255
    safe = np.where(step > 0, step, 1.0)  # a constant block: every code 0, and low alone restores it
    codes = np.rint((view - low[:, None]) / safe[:, None]).clip(0, 255).astype(np.uint8)
    return codes.reshape(-1)[: flat.size].reshape(array.shape), np.stack([low, step], axis=1)


def dequantize(codes: np.ndarray, scales: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """The inverse of :func:`quantize`; CompressionError if the codes and scales do not fit together."""
    blocks = -(-codes.size // BLOCK)
    if codes.dtype != np.uint8 or scales.dtype != np.float32 or scales.shape != (blocks, 2):
        raise CompressionError(
            f"int8 codes {codes.dtype} {codes.shape} need float32 scales of shape ({blocks}, 2), got "
            f"{scales.dtype} {scales.shape}"
        )
    if not np.isfinite(scales).all() or (scales[:, 1] < 0).any():
        raise CompressionError("int8 block scales hold NaN, infinite or negative steps")
    padded = np.zeros(blocks * BLOCK, np.float32)
    padded[: codes.size] = codes.reshape(-1)
    values = scales[:, :1] + padded.reshape(blocks, BLOCK) * scales[:, 1:]
    return values.reshape(-1)[: codes.size].reshape(codes.shape).astype(dtype, copy=False)


def _half(name: str, array: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # said below, in words
        half = array.astype(np.float16)
    if not np.isfinite(half).all():
        raise CompressionError(f"tensor {name!r} has values beyond float16's range (65504): use int8 or none")
    return half
