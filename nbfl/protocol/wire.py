"""Messages <-> ZeroMQ frames: the only place where bytes from the network become arrays.

A message is one JSON header frame followed by one raw frame per tensor::

    [header-json, tensor-0-bytes, tensor-1-bytes, ...]

The header names the protocol version, the message kind, ids, the round, free-form
JSON metadata and, for each tensor, its name, dtype and shape. Nothing in a message
is ever turned into an object other than JSON scalars/lists/dicts and numpy arrays
of an allowlisted dtype, so a hostile peer can at worst send wrong numbers, which
the receiving side validates again at the model level (names, shapes, finiteness).

The decoder checks everything before it builds anything: header size, that the
header is plain JSON (nesting at most :data:`MAX_DEPTH` deep, integers within 64 bits,
finite numbers, valid Unicode: input that would break a parser or a later ``float()``
or ``encode()`` elsewhere is refused here, in one place), JSON shape, known kind,
protocol version, frame count, dtype allowlist and that
``prod(shape) * itemsize == len(frame)``. Arrays are then made with
``np.frombuffer`` directly on the received frame, without a copy.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import NbflError
from .names import MessageKind

PROTOCOL_VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # 1 MiB of JSON is far more than any honest header needs
MAX_TENSORS = 4096
MAX_TENSOR_BYTES = 1 << 33  # 8 GiB: a sanity bound; deployments can lower it
MAX_DEPTH = 32  # nesting of a header's JSON; honest headers need about five levels
MAX_INT = 1 << 63  # integers beyond 64 bits are refused rather than carried into float() or C

KINDS = frozenset(MessageKind)  # nothing else is accepted

# Names on the wire -> little-endian numpy dtypes. Nothing else is accepted.
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in {
        "float16": "<f2",
        "float32": "<f4",
        "float64": "<f8",
        "int8": "i1",
        "int16": "<i2",
        "int32": "<i4",
        "int64": "<i8",
        "uint8": "u1",
        "bool": "?",
    }.items()
}


# what may be sent -> its name on the wire; big-endian arrays are converted once, on sending
_WIRE_NAMES: dict[np.dtype, str] = {
    dtype: name for name, allowed in DTYPES.items() for dtype in (allowed, allowed.newbyteorder(">"))
}
_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))  # made once: a header is encoded per message


class WireError(NbflError, ValueError):
    """A message that cannot be accepted; the text says why, for logs and replies."""


@dataclass
class Message:
    """One protocol message: a kind, JSON-safe fields and named arrays."""

    kind: str
    fields: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def encode(msg: Message) -> list[Any]:
    """Frames for ``msg``: the header as bytes, then each tensor's own buffer.

    Tensor frames are memoryviews of the arrays, not copies; pass them to
    ``send_multipart(..., copy=False)`` and do not mutate the arrays until sent.
    An array is copied only when it is not C-contiguous little-endian already.
    """
    specs, buffers = encode_tensors(msg.tensors)
    return [encode_header(msg.kind, msg.fields, specs), *buffers]


def encode_tensors(tensors: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The header's tensor specs (as JSON text) and one buffer per tensor (views, not copies).

    Split from :func:`encode` so one set of buffers can go to many peers, each with
    its own header (a broadcast sends the model once per peer, encodes it once).
    """
    layout = []
    buffers = []
    for name, value in tensors.items():
        arr = _wire_array(name, value)
        layout.append((name, arr.dtype, arr.shape))
        buffers.append(arr.reshape(-1).data.cast("B") if arr.size else b"")
    return _specs_json(tuple(layout)), buffers


@functools.lru_cache(maxsize=64)
def _specs_json(layout: tuple[tuple[str, np.dtype, tuple[int, ...]], ...]) -> str:
    """A model's tensor specs as JSON, made once per layout: a model sent every round to every
    client, and each client's answer, have the same specs each time."""
    return _JSON.encode(
        [{"name": name, "dtype": _WIRE_NAMES[dtype], "shape": list(shape)} for name, dtype, shape in layout]
    )


def encode_header(kind: str, fields: Mapping[str, Any], specs: str) -> bytes:
    """The JSON header frame (``specs`` from :func:`encode_tensors`); refuses unknown kinds,
    non-JSON fields and oversize."""
    if kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r}")
    try:
        text = _JSON.encode(fields if type(fields) is dict else dict(fields))
    except (TypeError, ValueError) as exc:
        raise WireError(f"fields of a {kind!r} message are not plain JSON: {exc}") from exc
    # the keys in the order json.dumps would write them; a kind is a plain lowercase name
    raw = f'{{"v":{PROTOCOL_VERSION},"kind":"{kind}","fields":{text},"tensors":{specs}}}'.encode()
    if len(raw) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(raw)} bytes exceeds {MAX_HEADER_BYTES}")
    return raw


def decode(frames: Sequence[Any]) -> Message:
    """Validate ``frames`` and build the message; raise :class:`WireError` if bad.

    ``frames`` may be ``bytes`` or ``zmq.Frame`` objects (``recv_multipart(copy=False)``);
    tensors are ``np.frombuffer`` views on them that keep the frame alive for as long
    as they are referenced (writable for received frames, which nothing else owns).
    """
    if not frames:
        raise WireError("empty message")
    head = _buffer(frames[0])
    if len(head) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(head)} bytes exceeds {MAX_HEADER_BYTES}")
    header = parse_json(head)
    if not isinstance(header, dict):
        raise WireError("header is not a JSON object")
    version = header.get("v")
    if version != PROTOCOL_VERSION:
        raise WireError(f"protocol version {version!r:.40}, expected {PROTOCOL_VERSION}")
    kind = header.get("kind")
    if kind not in KINDS:
        raise WireError(f"unknown message kind {kind!r:.40}")
    fields = header.get("fields", {})
    if not isinstance(fields, dict):
        raise WireError("'fields' is not a JSON object")
    specs = header.get("tensors", [])
    if not isinstance(specs, list) or len(specs) > MAX_TENSORS:
        raise WireError(f"'tensors' must be a list of at most {MAX_TENSORS} specs")
    if len(frames) != 1 + len(specs):
        raise WireError(f"header lists {len(specs)} tensors but {len(frames) - 1} frames came")
    tensors: dict[str, np.ndarray] = {}
    for spec, frame in zip(specs, frames[1:]):
        name, dtype, shape, expected = _check_spec(spec)
        if name in tensors:
            raise WireError(f"tensor {name!r} appears twice")
        buf = _buffer(frame)
        if expected != len(buf):
            raise WireError(
                f"tensor {name!r}: shape {shape} of {dtype.name} needs {expected} bytes, frame has {len(buf)}"
            )
        array = np.frombuffer(buf, dtype=dtype)
        tensors[name] = array if len(shape) == 1 else array.reshape(shape)
    return Message(kind, fields, tensors)


def parse_json(raw: bytes | memoryview) -> Any:
    """A header frame (or a control request: :mod:`nbfl.transport.control`) as plain JSON values, or
    WireError: never an exception of the parser's own.

    Refused: what later code could choke on. Integers beyond 64 bits and infinite floats
    (``1e999`` parses as inf) are caught as they are parsed; nesting deeper than
    :data:`MAX_DEPTH` by a walk over the containers; strings that are not valid Unicode
    (lone surrogates) by a walk over the strings, which only a ``\\u`` escape can make
    (valid UTF-8 holds none), so a header without one skips it: most of a result's header
    is its metrics, and this is the controller's hot path."""
    try:
        text = str(raw, "utf-8")  # UTF-8 only (RFC 8259)
        header = _DECODER.decode(text)
    except WireError:
        raise
    except RecursionError:
        raise WireError(f"header is nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, UnicodeError, OverflowError) as exc:  # UnicodeDecodeError is a ValueError
        raise WireError(f"header is not JSON: {str(exc):.200}") from None
    if text.count("{") + text.count("[") > MAX_DEPTH:  # fewer brackets than that cannot nest that deep
        _check_depth(header)
    if "\\u" in text:
        _check_texts(header)
    return header


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _int64(text: str) -> int:
    value = int(text)
    if not -MAX_INT <= value < MAX_INT:
        raise WireError("header holds an integer beyond 64 bits")
    return value


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise WireError("header holds a number too large for a float")
    return value


# made once, as json.loads(text, parse_...=...) would make one per header
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_int64, parse_float=_finite)


def _check_depth(value: Any) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH`; iterative, so depth costs no recursion."""
    stack = [(value, 0)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth >= MAX_DEPTH:
            raise WireError(f"header is nested more than {MAX_DEPTH} levels deep")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def _check_texts(value: Any) -> None:
    """Refuse strings (values and keys) that are not valid Unicode: lone surrogates from ``\\ud800`` escapes."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in item:
                _check_text(key)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            _check_text(item)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise WireError("header holds a string that is not valid Unicode (a lone surrogate)") from None


def _check_spec(spec: Any) -> tuple[str, np.dtype, tuple[int, ...], int]:
    """A tensor spec's name, dtype, shape and byte size, or WireError. (JSON makes exact
    types, so ``type(x) is int`` refuses ``true`` as a dimension without a second test.)"""
    if type(spec) is not dict:
        raise WireError("tensor spec is not a JSON object")
    name, dtype_name, shape = spec.get("name"), spec.get("dtype"), spec.get("shape")
    if type(name) is not str or not 0 < len(name) <= 512:
        raise WireError(f"tensor name {name!r:.80} is not a non-empty string of at most 512 characters")
    dtype = DTYPES.get(dtype_name) if type(dtype_name) is str else None
    if dtype is None:
        raise WireError(f"tensor {name!r}: dtype {dtype_name!r:.40} is not one of {sorted(DTYPES)}")
    if type(shape) is not list or len(shape) > 32:
        raise WireError(f"tensor {name!r}: shape {shape!r:.80} is not a list of non-negative ints")
    size = dtype.itemsize
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise WireError(f"tensor {name!r}: shape {shape!r:.80} is not a list of non-negative ints")
        size *= dim
    if size > MAX_TENSOR_BYTES:
        raise WireError(f"tensor {name!r}: {shape} exceeds the {MAX_TENSOR_BYTES}-byte tensor limit")
    return name, dtype, tuple(shape), size


def _wire_array(name: str, value: Any) -> np.ndarray:
    if not isinstance(name, str) or not name:
        raise WireError(f"tensor name {name!r} is not a non-empty string")
    arr = np.asarray(value)
    dtype_name = _WIRE_NAMES.get(arr.dtype)
    if dtype_name is None:
        raise WireError(f"tensor {name!r}: dtype {arr.dtype} cannot be sent; allowed: {sorted(DTYPES)}")
    wire_dtype = DTYPES[dtype_name]
    if arr.dtype != wire_dtype:  # big-endian input: convert once
        arr = arr.astype(wire_dtype)
    return arr if arr.flags.c_contiguous else arr.copy(order="C")  # (ascontiguousarray would make 0-d 1-d)


def _buffer(frame: Any) -> memoryview:
    """A flat byte view of a frame without copying it."""
    buf = getattr(frame, "buffer", frame)  # zmq.Frame exposes .buffer
    return memoryview(buf).cast("B") if not isinstance(buf, memoryview) or buf.format != "B" else buf


def message(kind: str, tensors: Mapping[str, np.ndarray] | None = None, /, **fields: Any) -> Message:
    """Shorthand used throughout nbfl: ``message("task", weights, task_id=..., round=3)``."""
    return Message(kind, dict(fields), dict(tensors or {}))
