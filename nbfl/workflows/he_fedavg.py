"""FedAvg under homomorphic encryption: the controller averages ciphertexts it cannot read.

Round one sends the initial model in plaintext (it is public: nobody's data shaped it
yet). From then on the global model exists only as ciphertexts. Each client decrypts
the task's model (:class:`~nbfl.filters.he.HEDecrypt`), trains, and encrypts its new
weights (:class:`~nbfl.filters.he.HEEncrypt`); the controller, holding only the public
parameters, multiplies each result by the plaintext weight the client reports, adds
them up and multiplies by ``1 / total``::

    mean = (sum_i n_i * Enc(w_i)) * (1 / sum_i n_i)

That is FedAvg's weighted mean of full weights, to CKKS precision. The controller's
``weights`` are then ciphertexts (uint8 arrays, their :data:`~nbfl.filters.he.Layout`
kept here in :attr:`HEFedAvg.layout`), so a controller ``evaluate`` callback has
nothing to read: clients evaluate the model they decrypt and report it as metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..protocol import names
from ..protocol.he import (
    CHUNK_PREFIX,
    ENCRYPTED,
    LAYOUT_KEY,
    Layout,
    chunk_names,
    chunk_sizes,
    layout_of,
    load_context,
    require_tenseal,
    slots,
)
from ..protocol.weights import Weights
from .base import RoundFailed, needs_results
from .registry import register
from .scatter_gather import MAX_WEIGHT, FedAvg

if TYPE_CHECKING:
    from ..protocol.records import Result
    from .base import RoundContext


@register("he_fedavg")
class HEFedAvg(FedAvg):
    """FedAvg over CKKS ciphertexts; ``context`` is the public one from :func:`~nbfl.protocol.he.new_contexts`
    (by default the one in the controller's kit, so ``--algorithm he_fedavg`` works by name).

    ``weight_by``, ``task_meta`` and ``max_weight`` are FedAvg's. A result is rejected (the client told
    why, the round going on with the others) unless it is exactly one fresh ciphertext
    per chunk of this model's layout, under this run's parameters. A ciphertext made
    with another key cannot be told from a good one here: it decrypts to noise on the
    clients, so every client must share the one key provisioning gave them. The
    controller's ``evaluate`` cannot read ciphertexts, so a round refuses to start with one.
    """

    name = "he_fedavg"
    trains = True

    def __init__(
        self,
        context: bytes | None = None,
        task_name: str = names.TRAIN,
        weight_by: str = "auto",
        task_meta: dict[str, Any] | None = None,
        *,
        max_weight: float = MAX_WEIGHT,
    ):
        super().__init__(task_name, weight_by, task_meta, max_weight=max_weight)
        self.context: Any = None
        self.layout: Layout | None = None  # of the model the controller holds, once it is encrypted
        if context is not None:
            self._take(context)

    def _take(self, context: bytes) -> None:
        """Use the public ``context``: refused if it holds the secret key or cannot average."""
        loaded = load_context(context)
        if loaded.is_private():
            raise ValueError("the controller must not hold the secret key: give it the public context")
        seal = loaded.seal_context().data
        if seal.first_context_data().chain_index() < 2:
            raise ValueError("the context allows fewer than the two multiplications the average needs")
        self.context = loaded
        self._fresh = seal.first_parms_id()  # the level a client's new ciphertext is at
        self.slots = slots(loaded)

    def round(self, run: "RoundContext", weights: Weights, number: int) -> Weights:
        if self.context is None:  # by name: the public context of the controller's kit
            if run.he_context is None:
                raise ValueError(
                    "he_fedavg needs the project's public HE context: a controller with a kit from a he = true "
                    "project (nbfl provision), or HEFedAvg(public_context)"
                )
            self._take(run.he_context)
        if run.evaluate is not None:
            raise ValueError("the controller cannot evaluate an encrypted model: drop evaluate=; clients report it")
        meta = dict(self.task_meta)
        if not any(name.startswith(CHUNK_PREFIX) for name in weights):
            self.layout = layout_of(weights, self.slots)  # plaintext: the initial model, or a new one the user set
        elif self.layout is None or set(weights) != set(chunk_names(self.layout)):
            raise RoundFailed("the controller holds ciphertexts this workflow did not make; set a plaintext model")
        else:
            meta[LAYOUT_KEY] = self.layout
        acc: list[Any] | None = None
        total, count = 0.0, 0
        for result in run.scatter(self.task_name, weights, meta=meta):
            try:
                weight = self.weight_of(result)
                scaled = self._scaled(result, weight)
            except ValueError as exc:
                run.reject(result, exc)
                continue
            acc = scaled if acc is None else [a + s for a, s in zip(acc, scaled)]
            total += weight
            count += 1
        needs_results(run, count)
        assert acc is not None
        names = chunk_names(self.layout)
        return {name: np.frombuffer((a * (1.0 / total)).serialize(), np.uint8) for name, a in zip(names, acc)}

    def _scaled(self, result: "Result", weight: float) -> list[Any]:
        """Each ciphertext of ``result`` times ``weight``; ValueError if one is unfit.

        The checks make sure every scaled result sits at the same level and scale, so
        adding it to the running sum cannot fail halfway and leave the sum half-updated.
        """
        assert self.layout is not None
        if result.kind != ENCRYPTED:
            raise ValueError(f"expected {ENCRYPTED} data (is the he_encrypt filter on?), got {result.kind}")
        if result.meta.get(LAYOUT_KEY) != self.layout:
            raise ValueError("the ciphertexts are of another model (their layout differs from the global model's)")
        names = chunk_names(self.layout)
        if set(result.weights) != set(names):
            raise ValueError(f"expected the {len(names)} ciphertexts {names[:3]}, got {sorted(result.weights)[:5]}")
        ts = require_tenseal()
        vectors = []
        for name, size in zip(names, chunk_sizes(self.layout)):
            arr = result.weights[name]
            if arr.dtype != np.uint8 or arr.ndim != 1:
                raise ValueError(f"{name}: a ciphertext is a 1-d uint8 array, got {arr.dtype} {arr.shape}")
            try:
                vec = ts.ckks_vector_from(self.context, arr.tobytes())
            except ValueError as exc:
                raise ValueError(f"{name}: not a CKKS ciphertext: {exc}") from None
            parts = vec.ciphertext()
            if (
                vec.size() != size
                or len(parts) != 1
                or parts[0].size() != 2
                or parts[0].parms_id() != self._fresh
                or parts[0].scale != self.context.global_scale
            ):
                raise ValueError(f"{name}: not a fresh ciphertext of {size} values under this run's parameters")
            vectors.append(vec)
        return [vec * weight for vec in vectors]
