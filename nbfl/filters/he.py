"""Homomorphic encryption, the client's half: encrypt what leaves the site, decrypt the mean.

The ciphertext format, the contexts and the layout are in :mod:`nbfl.protocol.he`, which
the controller's workflow reads too; the keys (:func:`new_contexts`, :func:`load_context`)
are offered here as well, beside the filters that use them. TenSEAL is imported only inside functions, so
``import nbfl`` never needs it (``pip install nbfl-jupyter[he]``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..protocol.he import (
    ENCRYPTED,
    LAYOUT_KEY,
    Context,
    Layout,
    check_layout,
    chunk_names,
    chunk_sizes,
    layout_of,
    load_context,
    new_contexts,
    require_tenseal,
    slots,
)
from ..protocol.names import DataKind
from ..protocol.weights import full_weights
from ..protocol.wire import DTYPES
from .base import FilterContext, FilterError, Weights

if TYPE_CHECKING:
    import tenseal

__all__ = ["HEDecrypt", "HEEncrypt", "decrypt", "encrypt", "load_context", "new_contexts"]


def encrypt(tensors: Mapping[str, np.ndarray], context: Context) -> tuple[Weights, Layout]:
    """Ciphertexts of ``tensors`` (uint8 arrays named ``ckks/<i>``) and their layout.

    Integer and bool tensors are encrypted as floats and rounded back on decryption.
    """
    ts = require_tenseal()
    ctx = load_context(context)
    layout = layout_of(tensors, slots(ctx))
    flat = np.concatenate([np.asarray(v, np.float64).reshape(-1) for v in tensors.values()] or [np.empty(0)])
    n = layout["slots"]
    out = {
        name: np.frombuffer(ts.ckks_vector(ctx, flat[i * n : (i + 1) * n]).serialize(), np.uint8)
        for i, name in enumerate(chunk_names(layout))
    }
    return out, layout


def decrypt(encrypted: Mapping[str, np.ndarray], context: Context, layout: Any) -> Weights:
    """The tensors ``encrypted`` holds, in the layout's names, shapes and dtypes (needs the secret key)."""
    ts = require_tenseal()
    ctx = load_context(context)
    check_layout(layout)
    names = chunk_names(layout)
    if set(encrypted) != set(names):
        raise ValueError(f"expected the {len(names)} ciphertexts {names[:3]}..., got {sorted(encrypted)[:5]}")
    values = []
    for name, size in zip(names, chunk_sizes(layout)):
        try:
            chunk = ts.ckks_vector_from(ctx, np.asarray(encrypted[name], np.uint8).tobytes()).decrypt()
        except ValueError as exc:
            raise ValueError(f"{name}: cannot decrypt: {exc}") from None
        if len(chunk) != size:
            raise ValueError(f"{name}: {len(chunk)} values, the layout says {size}")
        values.append(chunk)
    flat = np.concatenate([np.asarray(v, np.float64) for v in values] or [np.empty(0)])
    out, start = {}, 0
    for spec in layout["tensors"]:
        dtype, shape = DTYPES[spec["dtype"]], tuple(spec["shape"])
        part = flat[start : start + math.prod(shape)].reshape(shape)
        start += part.size
        if dtype.kind == "b":
            out[spec["name"]] = part >= 0.5
        else:
            out[spec["name"]] = (np.rint(part) if dtype.kind in "iu" else part).astype(dtype)
    return out


class HEEncrypt:
    """Client policy filter: nothing but ciphertexts of the trained weights leaves the site.

    Encrypts full weights, not differences: the controller then needs no model of its
    own to average them (it has only ciphertexts from the last round), and multiplies
    each by the plaintext weight the client reports (its samples or steps). A
    WEIGHT_DIFF (from a filter before this one) is added back to ``ctx.reference``,
    which the client sets to the model the task brought after its task filters, so
    the plaintext one :class:`HEDecrypt` made. Finiteness is checked here because the
    controller cannot check ciphertexts for NaN.
    """

    name = "he_encrypt"

    def __init__(self, context: Context):
        self.context = _private_context(context, "HEEncrypt")

    def __call__(self, tensors: Mapping[str, np.ndarray], kind: str, ctx: FilterContext) -> tuple[Weights, str]:
        if kind == DataKind.WEIGHT_DIFF:
            tensors = full_weights(tensors, kind, ctx.reference)
        elif kind != DataKind.WEIGHTS:
            raise FilterError(f"he_encrypt works on WEIGHTS or WEIGHT_DIFF, not {kind}")
        bad = [k for k, v in tensors.items() if np.asarray(v).dtype.kind == "f" and not np.isfinite(v).all()]
        if bad:
            raise FilterError(f"NaN or Inf in {bad[:5]}: not encrypted, the controller could not tell")
        encrypted, ctx.meta[LAYOUT_KEY] = encrypt(tensors, self.context)
        return encrypted, ENCRYPTED

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "slots": slots(self.context)}


class HEDecrypt:
    """Client task filter: the controller's encrypted aggregate back to plaintext weights.

    Runs on the task's data before the executor; ``ctx.meta`` is the task's meta, whose
    :data:`LAYOUT_KEY` marks ciphertexts. A task without it (round one's initial model,
    which is public) passes unchanged.
    """

    name = "he_decrypt"

    def __init__(self, context: Context):
        self.context = _private_context(context, "HEDecrypt")

    def __call__(self, tensors: Mapping[str, np.ndarray], kind: str, ctx: FilterContext) -> tuple[Weights, str]:
        layout = ctx.meta.get(LAYOUT_KEY)
        if layout is None:
            return dict(tensors), kind
        return decrypt(tensors, self.context, layout), DataKind.WEIGHTS

    def spec(self) -> dict[str, Any]:
        return {"name": self.name}


def _private_context(context: Context, who: str) -> "tenseal.Context":
    """The clients' full context; a public one (no secret key) is refused by name."""
    loaded = load_context(context)
    if not loaded.is_private():
        raise ValueError(f"{who} needs the clients' full context (with the secret key)")
    return loaded
