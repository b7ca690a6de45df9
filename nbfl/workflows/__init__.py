"""Workflows decide what a round sends and how results are combined: the controller's
side, run by a run's thread in the controller's kernel. A workflow sees only a
:class:`~nbfl.workflows.base.RoundContext`; the numpy maths it folds results with is
in :mod:`nbfl.aggregators`. Never imports the participant side.

One algorithm per file; every module here is imported with the package, and each
registers its names (:mod:`.registry`), so a new algorithm is one new file."""

import importlib
import pkgutil

from .. import algorithms as _algorithms
from ..algorithms.fedprox.server import FedProx
from ..algorithms.scaffold.server import Scaffold
from .base import RoundContext, RoundFailed, RoundStopped, Workflow
from .cross_site import CrossSiteEval, CrossSiteMatrix
from .cyclic import Cyclic
from .fedopt import FedOpt
from .he_fedavg import HEFedAvg
from .norm_clip import NormClip
from .registry import ALGORITHMS, make_workflow
from .robust import RobustAggregation
from .scatter_gather import FedAvg
from .stats import FederatedStatistics

for _module in pkgutil.iter_modules(__path__):  # the algorithms not named above register too
    importlib.import_module(f"{__name__}.{_module.name}")
for _pair in pkgutil.iter_modules(_algorithms.__path__):  # and the controller's half of each pair
    importlib.import_module(f"{_algorithms.__name__}.{_pair.name}.server")

__all__ = [
    "ALGORITHMS",
    "CrossSiteEval",
    "CrossSiteMatrix",
    "Cyclic",
    "FedAvg",
    "FederatedStatistics",
    "FedOpt",
    "FedProx",
    "HEFedAvg",
    "NormClip",
    "RobustAggregation",
    "RoundContext",
    "RoundFailed",
    "RoundStopped",
    "Scaffold",
    "Workflow",
    "make_workflow",
]
