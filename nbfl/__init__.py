"""nbfl: federated learning driven from a Jupyter notebook.

The controller holds the global model and drives rounds; clients join over ZeroMQ,
train on their own data and send back only weights. The core needs numpy and pyzmq;
torch enters through :mod:`nbfl.protocol.torch_adapter`.
"""

from .controller.controller import Controller
from .controller.run import Run
from .controller.workshop import Workshop
from .errors import NbflError
from .launch.spawn import spawn_clients, stop_clients
from .participant.client import Client
from .participant.tasks import TaskContext, Update, task
from .protocol.joining import JoinCode
from .workflows import make_workflow

__version__ = "0.1.0"


def load_ipython_extension(ipython) -> None:  # type: ignore[no-untyped-def]
    """``%load_ext nbfl``: the ``%fl_*`` magics (IPython is imported only now)."""
    from .notebook.magics import load

    load(ipython)


def unload_ipython_extension(ipython) -> None:  # type: ignore[no-untyped-def]
    from .notebook.magics import unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """The Federation panel's server routes (:mod:`nbfl.jupyter.server_extension`), enabled by the
    ``jupyter_server_config.d/nbfl.json`` that the wheel installs."""
    return [{"module": "nbfl.jupyter.server_extension"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt Federation panel (built from ``extensions/federation``), for ``jupyter labextension develop``."""
    return [{"src": "labextension", "dest": "nbfl-federation"}]


__all__ = [  # what a notebook needs; the rest is in the subpackages (nbfl.workflows, nbfl.data, ...)
    "Client",
    "Controller",
    "JoinCode",
    "NbflError",
    "Run",
    "TaskContext",
    "Update",
    "Workshop",
    "make_workflow",
    "spawn_clients",
    "stop_clients",
    "task",
]
