"""FedProx (Li et al., 2020): a proximal term keeps each client near the global model.

The controller's half (:mod:`.server`) only says ``mu`` in every task's meta; the site's
half (:mod:`.client`, for a torch loop; the numpy trainer adds the same term itself)
adds ``mu/2 * ||w - w_global||^2`` to its loss. What both read:
"""

MU = "fedprox_mu"  # meta key: FedProx's mu
