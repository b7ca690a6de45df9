"""Homomorphic encryption (CKKS, through TenSEAL): the format both sides agree on.

The client's filters (:mod:`nbfl.filters.he`) encrypt and decrypt; the controller's
workflow (:class:`~nbfl.workflows.he_fedavg.HEFedAvg`) averages what it cannot read;
provisioning makes the keys. All three read the layout and the contexts from here.


Every client holds the same secret key; the controller holds only the scheme's
parameters. A client encrypts its trained weights, the controller multiplies each
result by its plaintext aggregation weight, adds them up and multiplies by
``1 / total`` (:class:`~nbfl.workflows.he_fedavg.HEFedAvg`), and the clients decrypt
that mean as the next round's model. So the controller learns neither the updates nor
the model, only their sizes and the weights clients report. It protects against a
curious controller, not against a client: any client could decrypt another's update
if it saw one, so run with CURVE (:mod:`nbfl.transport.threads`) so nobody on the path does.

The model is flattened into one vector (all tensors, in order) and cut into chunks of
``slots = poly_modulus_degree / 2`` values, each one CKKS ciphertext carried as a
uint8 tensor named ``ckks/<i>``. Packing across tensors rather than per tensor means
small tensors (biases) do not each cost a whole ciphertext: the 2,410-parameter
digits MLP is one ciphertext, not four. A :data:`Layout` (names, dtypes, shapes,
chunk count) travels as plain JSON in the meta under :data:`LAYOUT_KEY`.

Expansion, with the defaults (N = 8192, moduli 60-40-40-60 bits, scale 2**40): a fresh
ciphertext of 4,096 slots serializes to about 331 kB, 21x the 16 kB of float32 values
it holds when full; the controller's aggregate, two rescalings later, to about 131 kB,
8x. A partly filled last chunk costs the same, so small models expand more: the
digits MLP (hidden 32, 9.6 kB) goes up as 331 kB (34x) and comes down as 131 kB (14x);
the CIFAR-10 LeNet (248 kB) as 5.3 MB (21x) and 2.1 MB (8.5x). CKKS is approximate: a
round trip is exact to about 1e-8, an aggregate (two plaintext multiplications) to
about 3e-6 relative, far below what training notices.

TenSEAL is imported only here, inside functions, so ``import nbfl`` never needs it
(``pip install nbfl-jupyter[he]``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Union

import numpy as np

from .names import DataKind
from .wire import DTYPES

if TYPE_CHECKING:
    import tenseal

LAYOUT_KEY = "he_layout"  # meta key: the Layout of the ciphertexts a task or result carries
ENCRYPTED = DataKind.ENCRYPTED  # data kind of a result that holds ciphertexts of full weights
CHUNK_PREFIX = "ckks/"

Layout = dict[str, Any]  # {"slots": int, "chunks": int, "tensors": [{"name", "dtype", "shape"}, ...]}
Context = Union["tenseal.Context", bytes]


def new_contexts(
    poly_modulus_degree: int = 8192,
    coeff_mod_bit_sizes: tuple[int, ...] = (60, 40, 40, 60),
    global_scale: float = 2**40,
) -> tuple[bytes, bytes]:
    """A fresh key: ``(public, full)`` serialized contexts.

    ``public`` (about 100 bytes) holds the parameters only, which is all that adding
    ciphertexts and multiplying them by plaintext numbers needs: no secret key, and no
    public key either, so the controller cannot even encrypt. ``full`` holds the secret
    and public keys, for the clients. The controller's two multiplications (by a
    client's weight, by ``1 / total``) each use one of the middle moduli, so at least
    two are required.
    """
    ts = require_tenseal()
    if len(coeff_mod_bit_sizes) < 4:
        raise ValueError("coeff_mod_bit_sizes needs at least two middle moduli: the controller multiplies twice")
    ctx = ts.context(
        ts.SCHEME_TYPE.CKKS, poly_modulus_degree=poly_modulus_degree, coeff_mod_bit_sizes=list(coeff_mod_bit_sizes)
    )
    ctx.global_scale = global_scale
    no_keys = {"save_galois_keys": False, "save_relin_keys": False}  # for rotations and ciphertext products: unused
    public = ctx.serialize(save_public_key=False, save_secret_key=False, **no_keys)
    full = ctx.serialize(save_public_key=True, save_secret_key=True, **no_keys)
    return public, full


def load_context(context: Context) -> "tenseal.Context":
    """A TenSEAL context from its serialized bytes (a context passes through)."""
    ts = require_tenseal()
    if isinstance(context, ts.Context):
        return context
    try:
        return ts.context_from(bytes(context))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a serialized TenSEAL context: {exc}") from None


def slots(context: Context) -> int:
    """How many values one ciphertext holds: half the polynomial degree."""
    return load_context(context).seal_context().data.key_context_data().parms().poly_modulus_degree() // 2


def layout_of(tensors: Mapping[str, np.ndarray], n_slots: int) -> Layout:
    """The layout :func:`encrypt` gives ``tensors``; the controller derives it from the initial model."""
    specs, size = [], 0
    for name, value in tensors.items():
        arr = np.asarray(value)
        dtype = next((k for k, v in DTYPES.items() if arr.dtype == v), None)
        if dtype is None:
            raise ValueError(f"{name}: dtype {arr.dtype} cannot be encrypted; allowed: {sorted(DTYPES)}")
        specs.append({"name": name, "dtype": dtype, "shape": list(arr.shape)})
        size += arr.size
    return {"slots": n_slots, "chunks": math.ceil(size / n_slots), "tensors": specs}


def chunk_names(layout: Layout) -> list[str]:
    return [f"{CHUNK_PREFIX}{i}" for i in range(layout["chunks"])]


def chunk_sizes(layout: Layout) -> list[int]:
    """Values per ciphertext: full ones, then the remainder."""
    size = sum(math.prod(t["shape"]) for t in layout["tensors"])
    return [min(layout["slots"], size - start) for start in range(0, size, layout["slots"])]


def check_layout(layout: Any) -> None:
    """Raise ValueError unless ``layout`` is a well-formed :data:`Layout` (it came over the network)."""
    if not isinstance(layout, dict) or not isinstance(layout.get("tensors"), list):
        raise ValueError(f"not an HE layout: {layout!r:.200}")
    n, chunks = layout.get("slots"), layout.get("chunks")
    if (
        not (isinstance(n, int) and isinstance(chunks, int))
        or any(isinstance(v, bool) or v < 0 for v in (n, chunks))
        or n == 0
    ):
        raise ValueError("an HE layout needs positive 'slots' and a 'chunks' count")
    size = 0
    for spec in layout["tensors"]:
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if (
            not isinstance(shape, list)
            or not isinstance(spec.get("name"), str)
            or spec.get("dtype") not in DTYPES
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise ValueError(f"bad tensor in an HE layout: {spec!r:.200}")
        size += math.prod(shape)
    if chunks != math.ceil(size / n):
        raise ValueError(f"{size} values make {math.ceil(size / n)} chunks of {n}, the layout says {chunks}")


def require_tenseal() -> Any:
    """The tenseal module, or an ImportError that says how to get it."""
    try:
        import tenseal
    except ImportError:
        raise ImportError("homomorphic encryption needs TenSEAL: pip install 'nbfl-jupyter[he]'") from None
    return tenseal
