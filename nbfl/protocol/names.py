"""Names the controller and the clients agree on: task names, meta keys, tensor prefixes.

Both sides import them from here, so client code (trainers, the torch helpers, the
client's statistics) never imports a controller-side workflow module to learn a string,
and a name changes in one place.
"""

from __future__ import annotations

# tasks a workflow sends and the built-in trainer answers
TRAIN = "train"
VALIDATE = "validate"
SUBMIT_MODEL = "submit_model"
STATISTICS = "statistics"

# keys of a task's (and a result's) meta
FILTERS = "filters"  # task: the filter specs the run asks for; result: the filters the update went through
FEDPROX_MU = "fedprox_mu"  # FedProx's mu: the client adds mu/2 * ||w - w_global||^2 to its loss
SCAFFOLD_RUN = "scaffold_run"  # a SCAFFOLD run's id: a new one tells clients to reset their variates
STATS_PASS = "pass"  # federated statistics: 1 (count, sum, min, max) or 2 (deviations, histograms)
MIN_COUNT = "min_count"  # federated statistics: fewer samples than this and a site withholds its numbers
WITHHELD = "withheld"  # federated statistics: why a site sent no numbers

# prefixes of tensor names that travel beside the model's own
SCAFFOLD_C = "scaffold.c/"  # the controller's control variate, sent with a task
SCAFFOLD_DC = "scaffold.dc/"  # a client's change of its variate, sent with its result

# the tensors each pass answers with, one value per feature (histogram: one row per feature)
FIRST_PASS = ("count", "sum", "min", "max")
SECOND_PASS = ("sum_sq_dev", "histogram")


# the kinds of data a task or a result carries, and keys of their meta (the seed-style API's names)
class DataKind:
    WEIGHTS = "WEIGHTS"
    WEIGHT_DIFF = "WEIGHT_DIFF"
    METRICS = "METRICS"
    COLLECTION = "COLLECTION"
    STATISTICS = "STATISTICS"


class MetaKey:
    NUM_STEPS_CURRENT_ROUND = "NUM_STEPS_CURRENT_ROUND"
    INITIAL_METRICS = "initial_metrics"
    CURRENT_ROUND = "current_round"
